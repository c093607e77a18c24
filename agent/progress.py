"""Progress of long work (bootstrap, large syncs, imports, reports).

On a terminal: a tqdm bar. Otherwise: quiet, parseable lines on stderr, at most one per
`EVERY_S`: `progress NAME done=N total=M`. Must never: write to stdout (scripts read it).
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import Self

from tqdm import tqdm

EVERY_S = 2.0


class Progress:
    def __init__(self, name: str) -> None:
        self.name = name
        self.tty = sys.stderr.isatty()
        self.bar: tqdm | None = None
        self.last = 0.0

    def __enter__(self) -> Self:
        return self

    def update(self, done: int, total: int) -> None:
        if self.tty:
            if self.bar is None:
                self.bar = tqdm(total=total, desc=self.name, unit="chg", file=sys.stderr)
            self.bar.total = total
            self.bar.n = done
            self.bar.refresh()
            return
        now = time.monotonic()
        if now - self.last >= EVERY_S or done >= total:
            self.last = now
            print(f"progress {self.name} done={done} total={total}", file=sys.stderr, flush=True)

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.bar is not None:
            self.bar.close()
