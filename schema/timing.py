"""Time as the chain reads it from outlets: parsing a stamp, and where a fact is booked.

An outlet's clock may be wrong (years off after a dead CMOS battery, minutes off without
NTP), and a stamp may not even be a time. HQ keeps every stamp as it came (the ledger holds
facts as they were) but places a fact in periods (invoice closes, reports, category
windows, "last purchase") by its *booking time* (docs/sync.md, "Outlet clocks"):

- the outlet's stamp when it is plausible: it parses, it is not after HQ's receive time
  plus the tolerance (nothing happens after HQ received it), and not before the outlet was
  registered at HQ minus the tolerance (an outlet makes no facts before it exists);
- HQ's receive time otherwise, with the reason, so the fact is flagged.

`local_time` shows a stored time to a person at the machine (the store manager's pages and
`loyalty status`): in this machine's time zone, to the minute, with how long ago;
`local_day` is that person's today and `local_week` their week (since Monday); `spoken`
says a duration in words ("2 minutes", "3 hours").

Promises: pure (no I/O; no clock but the "now" of `local_time`/`local_day` when they are
not given one); a booking time is always a canonical UTC stamp (`YYYY-MM-DDTHH:MM:SS.ffffffZ`),
so stored times compare correctly as strings; a stamp without an offset is read as UTC
(invariant 7). Must never: raise on any string.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

DEFAULT_TOLERANCE_S = 300.0  # 5 minutes: HQ's setting (`loyalty hq serve --clock-tolerance`)
MAX_STAMP = 40  # longer than any ISO 8601 time
_CANONICAL = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


def parse(text: str | None) -> datetime | None:
    """The UTC moment of an ISO 8601 stamp; None when it is not one."""
    if not text or len(text) > MAX_STAMP:
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00
        return None


def canonical(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class Booker:
    """Booking times of the facts of one push: received by HQ at `received` (HQ's own
    canonical clock) from an outlet registered at `registered` (None for HQ's own facts:
    no lower bound). Runs once per ingested fact: a canonical stamp (every current
    outlet's) is kept as it is, not formatted again."""

    def __init__(self, received: str, registered: str | None,
                 tolerance_s: float = DEFAULT_TOLERANCE_S) -> None:
        now = parse(received)
        if now is None:  # HQ's own clock: never anything but a time
            raise ValueError(f"HQ's receive time {received!r} is not a time")
        tolerance = timedelta(seconds=tolerance_s)
        self.now = now
        self.received = canonical(now)
        self.latest = now + tolerance
        start = parse(registered) if registered else None
        self.earliest = None if start is None else start - tolerance

    def __call__(self, stamp: str) -> tuple[str, str | None]:
        """(booking time, why the stamp was not used or None)."""
        moment = parse(stamp)
        if moment is None:
            return self.received, ("its time does not parse (kept in the ledger as sent): "
                                   "booked at HQ's receive time")
        if moment > self.latest:
            return self.received, (f"stamped {canonical(moment)[:19]}, {describe(moment - self.now)}"
                                   " after HQ received it: booked at HQ's receive time")
        if self.earliest is not None and moment < self.earliest:
            return self.received, (f"stamped {canonical(moment)[:19]}, before the outlet was "
                                   "registered at HQ: booked at HQ's receive time")
        return (stamp if _CANONICAL.fullmatch(stamp) else canonical(moment)), None


def booked(stamp: str, received: str, registered: str | None,
           tolerance_s: float = DEFAULT_TOLERANCE_S) -> tuple[str, str | None]:
    """(booking time, why the stamp was not used or None) of one fact (see `Booker`)."""
    return Booker(received, registered, tolerance_s)(stamp)


def offset_s(sent_at: str | None, received: str) -> float | None:
    """The outlet's clock minus HQ's, in seconds (positive: the outlet is ahead); None when
    the outlet sent no time or one that does not parse."""
    sent, now = parse(sent_at), parse(received)
    if sent is None or now is None:
        return None
    return round((sent - now).total_seconds(), 3)


def describe(delta: timedelta | float) -> str:
    """A duration for people: '3 s', '4 min', '2 h 5 min', '12 days', '5.0 years'."""
    seconds = abs(delta.total_seconds() if isinstance(delta, timedelta) else delta)
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min"
    if seconds < 86400:
        return f"{seconds // 3600:.0f} h {seconds % 3600 // 60:.0f} min"
    if seconds < 365 * 86400:
        return f"{seconds / 86400:.0f} days"
    return f"{seconds / (365.25 * 86400):.1f} years"


def describe_offset(offset: float, tolerance_s: float | None = None) -> str:
    """'5.0 years ahead of HQ', 'in step with HQ (0 s)'; says when it is over the tolerance."""
    if tolerance_s is not None and abs(offset) <= tolerance_s:
        sign = "" if abs(offset) < 0.5 else "+" if offset > 0 else "-"
        return f"in step with HQ ({sign}{describe(offset)})"
    side = "ahead of" if offset > 0 else "behind"
    text = f"{describe(offset)} {side} HQ"
    if tolerance_s is not None:
        text += f" (over the tolerance of {describe(tolerance_s)}): set this outlet's clock"
    return text


def local_time(value: str | None, now: datetime | None = None) -> str | None:
    """A stored UTC time for a person: `"2026-12-07 14:03 (3 min ago)"` in this machine's
    time zone (`"in 2 h"` for a time ahead of the clock). None stays None; a value that is not
    a time is shown as it is stored rather than hidden."""
    if not value:
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        return value
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    seconds = ((now or datetime.now(UTC)) - at).total_seconds()
    return f"{at.astimezone():%Y-%m-%d %H:%M} ({_ago(seconds)})"


def _ago(seconds: float) -> str:
    span = abs(seconds)
    if span < 60:
        return "just now"
    if span < 3600:
        amount = f"{int(span // 60)} min"
    elif span < 48 * 3600:
        amount = f"{int(span // 3600)} h"
    else:
        amount = f"{int(span // 86400)} days"
    return f"{amount} ago" if seconds > 0 else f"in {amount}"


def spoken(seconds: float) -> str:
    """A duration in words: '40 seconds', '1 minute', '2 hours', '3 days' (rounded down)."""
    span = int(abs(seconds))
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if span >= size:
            n = span // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{span} second{'s' if span != 1 else ''}"


def local_week(now: datetime | None = None) -> tuple[date, str]:
    """This week's Monday on this machine's clock and time zone, and the canonical UTC stamp
    of its local midnight (stored times at or after it are this week's)."""
    day, _ = local_day(now)
    monday = day - timedelta(days=day.weekday())
    # local midnight in Monday's own offset (a daylight-saving change may fall in the week)
    return monday, canonical(datetime(monday.year, monday.month, monday.day).astimezone())


def local_day(now: datetime | None = None) -> tuple[date, str]:
    """Today on this machine's clock and time zone, and the canonical UTC stamp of its local
    midnight (stored times at or after it are today's)."""
    here = (now or datetime.now(UTC)).astimezone()
    midnight = here.replace(hour=0, minute=0, second=0, microsecond=0)
    return here.date(), canonical(midnight)
