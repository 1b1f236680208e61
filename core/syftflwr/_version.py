"""Versions: syftflwr's own, and the Flower range it declares.

Imported by ``import syftflwr``, which must stay nearly free (``syftflwr run`` handles a
Ctrl-C from its first milliseconds): nothing is imported until a function needs it.
"""

__version__ = "0.1.0"


def supported_flwr() -> str:
    """Core's declared flwr requirement, read from the installed metadata (the range is
    declared once, in pyproject.toml)."""
    import importlib.metadata
    import re

    try:
        requires = importlib.metadata.requires("syftflwr") or []
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - source checkout
        requires = []
    found = [r for r in requires if re.match(r"flwr\b", r) and "extra ==" not in r]
    return found[0] if found else "the flwr range in its pyproject.toml"
