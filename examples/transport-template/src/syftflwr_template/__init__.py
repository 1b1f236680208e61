"""A template syftflwr transport: a mailbox in a directory every participant shares.

``plugin`` holds the hooks (light: imported to list and detect transports); ``roles``
builds the client, RPC and events roles on core's mailbox building blocks.
"""

__version__ = "0.1.0"
