"""syftflwr's ``syftbox`` transport: participants exchange messages through SyftBox
datasites. Each participant writes only into its own datasite
(``{data_dir}/datasites/{email}/app_data/syftflwr/``); peers read it there, locally
or after SyftBox has synced it.

The hook module is :mod:`syftflwr_syftbox.plugin`; it imports none of the syft
libraries, so listing and detecting transports stays cheap.
"""

from __future__ import annotations

__version__ = "0.1.0"
