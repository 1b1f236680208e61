"""A syftflwr transport whose mailbox is one SQLite file shared by every participant.

``plugin`` registers it with core's mailbox kit (light: imported to list and detect
transports); ``storage`` is the SQLite Storage every role is built on.
"""

__version__ = "0.1.0"
