"""A third-party syftflwr transport used by the test suite: one shared directory."""
