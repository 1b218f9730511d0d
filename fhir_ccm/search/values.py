"""Search values as the query string spells them, parsed into comparable ranges.

http://hl7.org/fhir/R4/search.html#prefix: a date, number or quantity stands for
the range its precision implies (``2026-03`` is the whole month, ``100`` is
99.5 up to 100.5), and prefixes compare ranges.
"""

from __future__ import annotations

import re
import unicodedata
from calendar import monthrange
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation

from fhir_ccm.errors import Invalid

PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
_DATE = re.compile(
    r"(?P<year>\d{4})(?:-(?P<month>\d{2})(?:-(?P<day>\d{2})"
    r"(?:T(?P<hour>\d{2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:\.(?P<fraction>\d+))?)?"
    r"(?P<zone>Z|[+-]\d{2}:\d{2})?)?)?)?",
    re.ASCII,  # \d is 0-9 only: ２０２６ is not a year
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Range:
    """A closed range ``[low, high]``; for dates in epoch milliseconds."""

    low: float
    high: float


def split_prefix(text: str) -> tuple[str, str]:
    """``ge2026-01`` gives ("ge", "2026-01"); no prefix means eq."""
    if len(text) > 2 and text[:2] in PREFIXES and (text[2].isdigit() or text[2] in "-+."):
        return text[:2], text[2:]
    return "eq", text


def _millis(moment: datetime) -> int:
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def date_range(text: str) -> Range:
    """The range of instants a FHIR date, dateTime or instant covers, by its precision."""
    match = _DATE.fullmatch(text.strip())
    if not match:
        hint = " (a '+' in a query string means a space: send a time zone as %2B)" if " " in text.strip() else ""
        raise Invalid(f"'{text}' is not a valid date{hint}")
    parts = match.groupdict()
    zone = parts["zone"]
    tz = UTC
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        tz = timezone(sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])))
    try:
        year = int(parts["year"])
        if parts["month"] is None:
            start = datetime(year, 1, 1, tzinfo=tz)
            end = datetime(year, 12, 31, 23, 59, 59, 999000, tzinfo=tz)
        elif parts["day"] is None:
            month = int(parts["month"])
            start = datetime(year, month, 1, tzinfo=tz)
            end = datetime(year, month, monthrange(year, month)[1], 23, 59, 59, 999000, tzinfo=tz)
        elif parts["hour"] is None:
            start = datetime(year, int(parts["month"]), int(parts["day"]), tzinfo=tz)
            end = start + timedelta(days=1) - timedelta(milliseconds=1)
        else:
            start = datetime(
                year, int(parts["month"]), int(parts["day"]), int(parts["hour"]), int(parts["minute"]), tzinfo=tz
            )
            if parts["second"] is None:
                end = start + timedelta(minutes=1) - timedelta(milliseconds=1)
            else:
                start = start.replace(second=int(parts["second"]))
                start, end = _second_range(start, parts["fraction"])
        return Range(_millis(start), _millis(end))
    except ValueError:
        raise Invalid(f"'{text}' is not a valid date") from None
    except OverflowError:  # 9999-12-31T23:59:59-14:00 is in the year 10000
        raise Invalid(f"'{text}' is out of the range of dates") from None


def _second_range(start: datetime, fraction: str | None) -> tuple[datetime, datetime]:
    """A second and its fraction as a range by precision: ``.2`` is .200 to .299, as index rows have it.

    Only milliseconds are stored, so three or more digits name one millisecond.
    """
    if fraction is None:
        return start, start + timedelta(seconds=1) - timedelta(milliseconds=1)
    digits = fraction[:3]
    step = 10 ** (3 - len(digits))
    start = start.replace(microsecond=int(digits) * step * 1000)
    return start, start + timedelta(milliseconds=step - 1)


def decimal_value(text: str) -> Decimal:
    if not text.isascii():  # Decimal() reads ١٠ as 10
        raise Invalid(f"'{text}' is not a number")
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise Invalid(f"'{text}' is not a number") from None
    if not value.is_finite():
        raise Invalid(f"'{text}' is not a number")
    return value


def number_range(value: Decimal) -> Range:
    """``100`` means [99.5, 100.5]: half a unit of the last significant digit either side."""
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)
    half = Decimal(5).scaleb(exponent - 1)
    return Range(float(value - half), float(value + half))


def normalize_text(text: str) -> str:
    """Case- and accent-insensitive form of a string: ``José  MÜLLER`` gives ``jose muller``.

    Used for index rows and search values alike, so both sides always agree.
    """
    if text.isascii():
        return " ".join(text.casefold().split())
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(char for char in decomposed if not unicodedata.combining(char))
    return " ".join(stripped.casefold().split())
