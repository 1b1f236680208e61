"""Old path of :mod:`syftflwr.mailbox.profile` (plugins imported ``refuse_oversized``
from here); kept for one minor release."""

from __future__ import annotations

from syftflwr._deprecation import mark_private as _mark_private
from syftflwr.mailbox.profile import WireProfile, refuse_oversized

__all__ = ["WireProfile", "refuse_oversized"]

_mark_private(__name__)  # plugins importing plugin-API names from here get a warning
