"""Money and ratios for people: integer minor units (or hundredths) as text (pure).

One place for it, used by receipts, reports and the back office: `1234567 → "12,345.67"`
(`grouped=False`: `"12345.67"`, as on a 40-column receipt). Must never: take or make a float.
"""

from __future__ import annotations


def hundredths(value: int, grouped: bool = True) -> str:
    sign = "-" if value < 0 else ""
    whole, part = divmod(abs(value), 100)
    return f"{sign}{whole:,}.{part:02d}" if grouped else f"{sign}{whole}.{part:02d}"


def money(minor: int, grouped: bool = True) -> str:
    """Minor units of a two-decimal currency."""
    return hundredths(minor, grouped)
