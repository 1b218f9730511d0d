"""The ids the server gives new resources: time-ordered UUIDs (RFC 9562 version 7).

A random UUID (version 4) lands every new resource at a random place in each
index keyed by id (the current-resource table, the history, and each search
index's ``(type, id)`` lookup), so a write of 1,000 resources touches
thousands of pages scattered over the database, more as it grows. A version 7
UUID starts with the creation time in milliseconds, then 74 random bits: new
ids sort after older ones, writes append to the end of those indexes, and ids
stay unique and unguessable. Like any server id it is opaque to clients.
"""

from __future__ import annotations

import os
import time
import uuid

_VERSION = 0x7
_VARIANT = 0b10


def new_id() -> str:
    """A new resource id: ``0193f5e2-6b1c-7a4e-9d2f-3c1b5a7e8f90``, ordered by creation time."""
    millis = time.time_ns() // 1_000_000
    random = int.from_bytes(os.urandom(10), "big")  # 80 bits, 74 of them used
    value = (millis & ((1 << 48) - 1)) << 80
    value |= _VERSION << 76
    value |= (random >> 68) << 64  # 12 random bits
    value |= _VARIANT << 62
    value |= random & ((1 << 62) - 1)  # 62 random bits
    return str(uuid.UUID(int=value))
