"""Progress of long work (bootstrap, large syncs, imports, reports).

On a terminal: a tqdm bar (done/total in the work's unit, with its rate and ETA). Otherwise:
quiet, parseable lines on stderr, at most one per `EVERY_S`:
`progress NAME done=N total=M unit=UNIT eta=Ss` (`eta=?` until something is done; the
estimate assumes the rate so far holds). Must never: write to stdout (scripts read it).
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import Self

from tqdm import tqdm

EVERY_S = 2.0


class Progress:
    def __init__(self, name: str, unit: str = "chg") -> None:
        self.name = name
        self.unit = unit
        self.tty = sys.stderr.isatty()
        self.bar: tqdm | None = None
        self.started = time.monotonic()
        self.last: float | None = None

    def __enter__(self) -> Self:
        return self

    def eta(self, done: int, total: int, now: float) -> str:
        """Seconds left at the rate so far, as text ("?" while nothing is done)."""
        if done <= 0 or total <= 0:
            return "?"
        left = max(total - done, 0) * (now - self.started) / done
        return f"{round(left)}s"

    def update(self, done: int, total: int) -> None:
        if self.tty:
            if self.bar is None:
                self.bar = tqdm(total=total, desc=self.name, unit=self.unit, file=sys.stderr,
                                unit_scale=True)
            self.bar.total = total
            self.bar.n = done
            self.bar.refresh()
            return
        now = time.monotonic()
        if self.last is None or now - self.last >= EVERY_S or done >= total:
            self.last = now
            print(f"progress {self.name} done={done} total={total} unit={self.unit} "
                  f"eta={self.eta(done, total, now)}", file=sys.stderr, flush=True)

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.bar is not None:
            self.bar.close()
