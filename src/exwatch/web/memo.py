"""A small in-process cache for what pages compute from a whole scan (trend, CVE counts).

Keys carry the scans' enrichment stamps, so a new enrichment is a new key; the cache keeps
the most recent entries only.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import TypeVar

T = TypeVar("T")
_SIZE = 256
_ENTRIES: OrderedDict[Hashable, object] = OrderedDict()
_LOCK = threading.Lock()


def memo(key: Hashable, compute: Callable[[], T]) -> T:
    with _LOCK:
        if key in _ENTRIES:
            _ENTRIES.move_to_end(key)
            return _ENTRIES[key]  # type: ignore[return-value]
    value = compute()
    with _LOCK:
        _ENTRIES[key] = value
        while len(_ENTRIES) > _SIZE:
            _ENTRIES.popitem(last=False)
    return value


def clear() -> None:
    with _LOCK:
        _ENTRIES.clear()


__all__ = ["clear", "memo"]
