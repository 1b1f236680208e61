"""Whether a process still exists: how a runner tells a dead owner's claim (or a
killed aggregator's run) from a live one's, on this machine."""

from __future__ import annotations

import os

from syftflwr._deprecation import mark_private as _mark_private


def pid_alive(pid: int) -> bool:
    """True if a process ``pid`` exists here. Unsure (no permission to signal it, a
    number out of range) counts as alive: taking over a live owner's work would handle
    it twice, leaving a dead one's only delays it."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):
        return True
    return True


_mark_private(__name__)  # plugins importing plugin-API names from here get a warning
