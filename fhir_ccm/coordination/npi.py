"""The US National Provider Identifier check (45 CFR 162.406; the Luhn check digit with prefix 80840).

An NPI has ten digits and starts with 1 or 2; its last digit is the Luhn check
digit of the first nine, computed as if they followed the card issuer prefix
80840. Published examples reuse NPIs and use invalid ones, so an NPI is a
merge key only when it passes, and only together with the family name.
"""

from __future__ import annotations

import re
from typing import Any

NPI_SYSTEM = "http://hl7.org/fhir/sid/us-npi"
_SHAPE = re.compile(r"^[12][0-9]{9}$")


def npi_valid(value: str) -> bool:
    if not _SHAPE.match(value):
        return False
    total = 0
    for position, digit in enumerate(reversed("80840" + value)):
        number = int(digit) * (2 if position % 2 else 1)
        total += number - 9 if number > 9 else number
    return total % 10 == 0


def npis_of(resource: dict[str, Any]) -> tuple[str, ...]:
    """Every NPI a resource carries, as written (whitespace trimmed), sorted."""
    found = {
        identifier["value"].strip()
        for identifier in resource.get("identifier") or []
        if isinstance(identifier, dict)
        and identifier.get("system") == NPI_SYSTEM
        and isinstance(identifier.get("value"), str)
    }
    return tuple(sorted(found))
