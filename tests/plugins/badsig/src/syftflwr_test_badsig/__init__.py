"""syftflwr test plugin: a hook implementation with a wrong argument name."""
