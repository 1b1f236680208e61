"""syftflwr test plugin: implements a hook syftflwr does not declare."""
