"""Arms the test-only faults of ``SYFTFLWR_FAULTS`` when a process starts (Python imports
``sitecustomize`` from ``sys.path`` at start-up; tests put this folder on a child's
``PYTHONPATH`` with ``syftflwr_faults.fault_env``). Never on a user's path: production
code has no fault branch. See README.md."""

import syftflwr_faults

syftflwr_faults.install_from_env()
