"""An outlet whose token HQ refuses: the operator is told once how to fix it, not forever.

Real processes: `loyalty hq serve` and `loyalty agent serve --hq URL --token WRONG`.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from chainkit import HQProcess, OutletProcess, cli, until

from sync.loop import FailureLog
from sync.transport import LinkDown


def last_sync_error(db: Path) -> str:
    done = cli("status", "--db", str(db))
    assert done.returncode == 0, done.stderr
    for row in done.stdout.splitlines():
        if row.startswith("Last sync error"):
            return row.removeprefix("Last sync error").strip()
    raise AssertionError(done.stdout)


def test_a_wrong_outlet_token_is_logged_once_and_status_says_how_to_get_a_new_one(
        tmp_path: Path) -> None:
    hq = HQProcess(tmp_path / "hq.db")
    hq.outlet_add("NORTH")
    agent = OutletProcess(tmp_path / "north.db", "NORTH", hq.url, "lo_not-the-token")
    try:
        hq.start()
        agent.start()
        until(lambda: "outlet-token" in last_sync_error(agent.db), 15,
              what="the refusal recorded with its fix")
        # both loops retry with back-off (0.2 s doubling up to 10 s): a dozen refusals by now
        time.sleep(6)
        assert agent.running
        error = last_sync_error(agent.db)
        assert "loyalty hq outlet-token" in error and "--token" in error, error
        assert error.count("unauthorized") == 1, error
        logged = [line for line in agent.stderr().splitlines() if "unauthorized" in line]
        assert len(logged) == 1, "\n".join(logged)
        assert "loyalty hq outlet-token" in logged[0]
        assert "lo_not-the-token" not in agent.stderr()  # the secret never reaches the log
    finally:
        agent.kill()
        hq.kill()


def test_a_repeating_failure_is_logged_again_only_after_a_quiet_period(
        caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    failures = FailureLog(every=600, clock=lambda: now[0])
    down = LinkDown("HQ unreachable at http://hq")
    with caplog.at_level(logging.INFO, logger="sync.loop"):
        for _ in range(50):                      # HQ down: both loops retry every few seconds
            failures.failed("push", down, 10)
            failures.failed("pull", down, 10)
            now[0] += 10
        assert len(caplog.records) == 1
        now[0] = 601
        failures.failed("push", down, 10)      # after the quiet period: once more, with a count
        assert len(caplog.records) == 2 and "99 more" in caplog.records[1].getMessage()
        failures.succeeded("push")               # HQ is back: the next outage is news again
        failures.failed("pull", down, 10)
        assert len(caplog.records) == 3
        assert caplog.records[0].getMessage().count("hq_unreachable") == 1
