"""Kubernetes resource quantities ("100m", "128Mi", "1.5"), parsed for comparison.

The grammar is the API server's: a decimal number, then a binary suffix
(Ki..Ei), a decimal suffix (n, u, m, k, M..E) or an exponent (e3). Parsing
here lets the settings reject "512mb" and compare limits with requests
before anything reaches a cluster.
"""

from __future__ import annotations

import re
from decimal import Decimal

_PATTERN = re.compile(
    r"^(?P<number>[+-]?(?:\d+(?:\.\d*)?|\.\d+))(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?\d+)?$"
)

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}


def parse_quantity(text: str) -> Decimal:
    """Return the quantity's value in base units (cores or bytes); ValueError if malformed or negative."""
    match = _PATTERN.match(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"{text!r} is not a Kubernetes quantity")
    number = Decimal(match.group("number"))
    suffix = match.group("suffix") or ""
    if suffix in _BINARY:
        value = number * _BINARY[suffix]
    elif suffix in _DECIMAL:
        value = number * _DECIMAL[suffix]
    else:
        value = number * Decimal(10) ** int(suffix[1:])
    if value < 0:
        raise ValueError(f"{text!r} is negative")
    return value


def _parse_with_hint(text: str, hint: str) -> Decimal:
    try:
        return parse_quantity(text)
    except ValueError as error:
        raise ValueError(f"{error}; {hint}") from None


def parse_cpu(text: str) -> Decimal:
    """Parse a CPU quantity in cores ("250m", "0.5", "2"); it must be positive."""
    value = _parse_with_hint(text, "use cores like 0.5 or millicores like 500m")
    if value <= 0:
        raise ValueError(f"{text!r} must be more than zero")
    return value


def parse_memory(text: str) -> Decimal:
    """Parse a memory quantity in bytes ("128Mi", "1Gi"); rejects the "m" (milli) slip for Mi."""
    value = _parse_with_hint(text, "use bytes with a suffix like 128Mi or 1Gi")
    if isinstance(text, str) and text.strip().endswith("m"):
        raise ValueError(f"{text!r} means milli-bytes; write Mi (mebibytes), e.g. 128Mi")
    if value < 1024 * 1024:
        raise ValueError(f"{text!r} is under 1Mi; use a suffix like 128Mi or 1Gi")
    return value
