"""syftflwr test plugin: built for plugin-API version 99."""
