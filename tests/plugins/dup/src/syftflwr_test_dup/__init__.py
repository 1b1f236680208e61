"""syftflwr test plugin: a second distribution claiming the name tinydir."""
