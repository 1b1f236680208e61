"""A template syftflwr transport: a mailbox in a directory every participant shares.

``plugin`` holds the hooks (light: imported to list and detect transports); ``storage``
opens the storage core's mailbox kit builds every role on.
"""

__version__ = "0.1.0"
