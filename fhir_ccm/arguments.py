"""Numbers that arrive as text in URLs and query strings.

``str.isdigit`` accepts ``²`` and ``١`` and ``int`` then fails, and a very long
number overflows SQLite's integers: both used to be 500s.
"""

from __future__ import annotations

from fhir_ccm.errors import Invalid

MAX_DIGITS = 18  # below SQLite's 64-bit integers


def natural_number(name: str, text: str, ceiling: int | None = None) -> int:
    """A non-negative integer in ASCII digits; above ``ceiling`` gives ``ceiling``, too long is 400."""
    if not (text.isascii() and text.isdigit()):
        raise Invalid(f"{name} must be a non-negative integer, not '{text[:40]}'")
    if len(text) > MAX_DIGITS:
        if ceiling is None:
            raise Invalid(f"{name} is too large: '{text[:40]}'")
        return ceiling
    return int(text) if ceiling is None else min(int(text), ceiling)


def is_version_id(text: str) -> bool:
    """A version id the store can hold (``_history/２`` and 30-digit ids are not)."""
    return text.isascii() and text.isdigit() and len(text) <= MAX_DIGITS
