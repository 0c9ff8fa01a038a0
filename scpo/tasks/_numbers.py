"""Number parsing shared by the numeric tasks: commas, currency, units, trailing periods, floats."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

# A number as people write it: optional sign, thousands commas (only in groups of 3), decimals,
# or a simple fraction. Ordered so that "1,000" wins over "1".
NUMBER = re.compile(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?|-?\d+(?:\.\d+)?(?:/\d+)?|-?\.\d+")


def find_numbers(text: str) -> list[str]:
    return NUMBER.findall(text)


def canonical_number(text: str) -> str | None:
    """'1,000.50' -> '1000.5', '145.0' -> '145', '3/4' -> '0.75', '$18' -> '18'; None if not a number."""
    s = text.strip().replace(",", "").replace("$", "").replace("\\$", "").rstrip(".").strip()
    s = s.replace("\\%", "").rstrip("%").strip()
    try:
        if "/" in s:
            num, den = s.split("/", 1)
            value = Decimal(num) / Decimal(den)
        else:
            value = Decimal(s)
    except (InvalidOperation, ValueError, ZeroDivisionError):
        return None
    if not value.is_finite():
        return None
    value = value.normalize()
    if value == 0:
        return "0"
    out = format(value, "f")
    return out


def close(a: str, b: str, rel_tol: float = 1e-6, abs_tol: float = 1e-9) -> bool:
    """Equal within a relative tolerance; two integers must be equal exactly (1201565 != 1201566)."""
    ca, cb = canonical_number(a), canonical_number(b)
    if ca is None or cb is None:
        return False
    if "." not in ca and "." not in cb:
        return ca == cb
    x, y = float(ca), float(cb)
    return abs(x - y) <= max(rel_tol * max(abs(x), abs(y)), abs_tol)
