"""Money and ratios for people: integer minor units (or hundredths) as text and back (pure).

One place for it, used by receipts, reports, error messages and both back offices:
`money(1234567) → "12,345.67"` (`grouped=False`: `"12345.67"`, as on a 40-column receipt).
`parse_money` reads what a person types (a back-office form, a CLI option) into minor
units: `50`, `50.00`, `50,00`, `1.234,56`, `1,234.56` (either decimal convention, optional
thousands grouping, surrounding whitespace); it refuses anything it would have to guess at
with an `InvalidRequest` that says what is expected. Must never: take or make a float,
guess between a decimal and a thousands separator, or read more than 2 decimals.
"""

from __future__ import annotations

import re

from schema.errors import InvalidRequest

MAX_AMOUNT = 10**11  # minor units: 1,000,000,000.00, far above any payment or price
EXPECTED = "an amount is like 50, 50.00, 50,00, 1.234,56 or 1,234.56 (at most 2 decimals)"
_NUMBER = re.compile(r"[0-9]+(?:[.,][0-9]+)*")
_SEPARATOR = re.compile(r"[.,]")
_MAX_DIGITS = 15  # never hand int() a huge string; anything longer is over MAX_AMOUNT


def hundredths(value: int, grouped: bool = True) -> str:
    sign = "-" if value < 0 else ""
    whole, part = divmod(abs(value), 100)
    return f"{sign}{whole:,}.{part:02d}" if grouped else f"{sign}{whole}.{part:02d}"


def money(minor: int, grouped: bool = True) -> str:
    """Minor units of a two-decimal currency."""
    return hundredths(minor, grouped)


def parse_money(text: str, *, field: str | None = None, negative: bool = False,
                maximum: int = MAX_AMOUNT) -> int:
    """Minor units of an amount a person typed (see the module's docstring).

    `field` names the input in the refusal's message; `negative` allows a leading `-`;
    the amount's size is at most `maximum` minor units."""
    prefix = f"{field}: " if field else ""
    shown = repr(text.strip()[:30])
    s = text.strip()
    if not s:
        raise InvalidRequest(f"{prefix}empty: {EXPECTED}")
    sign = 1
    if s.startswith("-"):
        if not negative:
            raise InvalidRequest(f"{prefix}{shown}: an amount here cannot be negative; "
                                 f"{EXPECTED}")
        sign, s = -1, s[1:]
    if not _NUMBER.fullmatch(s):
        raise InvalidRequest(f"{prefix}{shown} is not an amount: {EXPECTED}")
    separators = _SEPARATOR.findall(s)
    groups = _SEPARATOR.split(s)
    if not separators:
        whole, part = groups, ""
    elif len(set(separators)) == 2:  # "1.234,56" / "1,234.56": the last one is the decimal
        if separators.count(separators[-1]) != 1:
            raise InvalidRequest(f"{prefix}{shown} is not an amount: {EXPECTED}")
        whole, part = groups[:-1], groups[-1]
    elif len(separators) == 1:
        whole, part = groups[:1], groups[1]
        if len(part) == 3:
            raise InvalidRequest(
                f"{prefix}{shown} is ambiguous: is {separators[0]!r} a thousands or a decimal "
                f"separator? Type the decimals too (e.g. {groups[0]}{separators[0]}{part}"
                f"{'.' if separators[0] == ',' else ','}00); {EXPECTED}")
    else:  # "1,234,567": the same separator several times can only group thousands
        whole, part = groups, ""
    if len(whole) > 1 and (len(whole[0]) > 3 or any(len(g) != 3 for g in whole[1:])):
        raise InvalidRequest(f"{prefix}{shown} is not an amount: {EXPECTED}")
    if len(part) > 2:
        raise InvalidRequest(f"{prefix}{shown} has more than 2 decimals: {EXPECTED}")
    digits = "".join(whole).lstrip("0")
    if len(digits) > _MAX_DIGITS:
        raise InvalidRequest(f"{prefix}{shown} is too large: at most {money(maximum)}")
    minor = int(digits or "0") * 100 + int((part + "00")[:2])
    if minor > maximum:
        raise InvalidRequest(f"{prefix}{shown} is too large: at most {money(maximum)}")
    return sign * minor
