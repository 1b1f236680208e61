"""syftflwr test plugin: its hook module imports a dependency that is not installed."""
