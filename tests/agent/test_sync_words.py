"""The outlet's sync state in words a store manager understands (agent/status.py
`describe_sync`, shown on the manager's dashboard): pure, over the figures of
`loyalty status` and what is waiting per kind of fact, at a given time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from agent.status import describe_sync

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def ago(**delta: float) -> str:
    return (NOW - timedelta(**delta)).isoformat().replace("+00:00", "Z")


def figures(**changes: Any) -> dict[str, Any]:
    base = {"link": "router", "pending_events": 0, "oldest_pending_at": None,
            "last_sync_at": ago(minutes=2), "last_sync_error": None}
    return {**base, **changes}


def test_in_sync_says_when_head_office_was_last_reached() -> None:
    state = describe_sync(figures(), {}, NOW)
    assert (state.level, state.words) == (
        "ok", "In sync with head office, last contact 2 minutes ago.")
    assert describe_sync(figures(last_sync_at=ago(seconds=20)), {}, NOW).words == (
        "In sync with head office, last contact just now.")


def test_facts_waiting_long_are_counted_by_kind_with_what_to_do() -> None:
    state = describe_sync(figures(pending_events=4, oldest_pending_at=ago(hours=2, minutes=5),
                                  last_sync_at=ago(hours=2, minutes=10)),
                          {"sale.recorded": 3, "customer.registered": 1}, NOW)
    assert state.level == "attention"
    assert state.words == ("3 sales and 1 registration waiting to be sent for 2 hours: check "
                           "the network. Last contact 2 hours ago.")


def test_facts_just_made_are_on_their_way() -> None:
    state = describe_sync(figures(pending_events=1, oldest_pending_at=ago(seconds=30)),
                          {"sale.recorded": 1}, NOW)
    assert state.level == "ok"
    assert state.words == "1 sale being sent to head office; last contact 2 minutes ago."


def test_the_last_error_is_shown_without_its_time_stamp() -> None:
    state = describe_sync(figures(pending_events=2, oldest_pending_at=ago(minutes=40),
                                  last_sync_error=f"{ago(minutes=1)} connection refused"),
                          {"gift.redeemed": 1, "stock.moved": 1}, NOW)
    assert state.level == "attention"
    assert state.words.startswith("1 gift hand-out and 1 stock movement waiting to be sent "
                                  "for 40 minutes: check the network.")
    assert state.words.endswith("Last error: connection refused.")


def test_a_modem_outlet_waits_for_its_next_call() -> None:
    modem = figures(link="modem", pending_events=5, oldest_pending_at=ago(minutes=50),
                    next_dial_at=(NOW + timedelta(minutes=70)).isoformat())
    state = describe_sync(modem, {"sale.recorded": 5}, NOW)
    assert state.level == "waiting"
    assert state.words.startswith("5 sales waiting for the next call to head office at ")
    late = describe_sync({**modem, "oldest_pending_at": ago(hours=5), "next_dial_at": None},
                         {"sale.recorded": 5}, NOW)
    assert late.level == "attention" and "check the modem and the phone line" in late.words


def test_never_in_contact_and_working_alone() -> None:
    never = describe_sync(figures(last_sync_at=None), {}, NOW)
    assert never.level == "waiting"
    assert never.words == "Not in contact with head office yet; nothing is waiting to be sent."
    alone = describe_sync(figures(link="none"), {}, NOW)
    assert alone.level == "alone" and "not connected to head office" in alone.words
