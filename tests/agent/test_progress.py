"""Progress of long work off a terminal (agent.progress): parseable lines on stderr with
rows done out of the total and an estimate of the time left (issue 9)."""

from __future__ import annotations

import pytest

from agent import progress
from agent.progress import Progress


def test_lines_off_a_terminal_give_done_total_unit_and_an_eta(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    clock = [100.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock[0])
    with Progress("report turnover", unit="rows") as bar:
        bar.update(0, 1000)
        clock[0] += 10
        bar.update(250, 1000)
        clock[0] += 1  # within EVERY_S of the last line: quiet
        bar.update(300, 1000)
        clock[0] += 9
        bar.update(1000, 1000)
    captured = capsys.readouterr()
    assert captured.out == ""  # stdout is for the report
    assert captured.err.splitlines() == [
        "progress report turnover done=0 total=1000 unit=rows eta=?",
        "progress report turnover done=250 total=1000 unit=rows eta=30s",
        "progress report turnover done=1000 total=1000 unit=rows eta=0s",
    ]
