"""``python -m syftflwr``: the same CLI as the ``syftflwr`` console script."""

from __future__ import annotations

from syftflwr.cli import main

if __name__ == "__main__":
    main()
