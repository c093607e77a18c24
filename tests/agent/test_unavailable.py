"""503 answers at the till: what the agent cannot do yet or any more, said so a supervisor
can act, with a stable code, and with nothing written (docs/till-api.md, "Errors").

Real `loyalty agent serve` processes over HTTP (tests/agentkit.py).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from agentkit import AgentProcess, connect, db_state, expect_error, free_port

PERSON = {"kind": "person", "given_name": "Ann", "surname": "Lee"}


def test_a_chain_outlet_before_its_first_sync_answers_not_ready(
        start_agent: Callable[..., AgentProcess]) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"  # HQ never answers
    agent = start_agent(outlet="NEW", extra=("--hq", nowhere, "--token", "lo_x"))
    till = agent.till()
    before = db_state(agent.db)
    for body in (PERSON, {**PERSON, "category": "A"}):
        error = expect_error(till.post("/v1/customers", body), 503, "not_ready")
        assert "first sync" in error["message"], error
    assert db_state(agent.db) == before


def test_a_used_up_card_range_answers_card_range_exhausted_and_a_new_range_works(
        tmp_path: Path, start_agent: Callable[..., AgentProcess]) -> None:
    agent = start_agent(tmp_path / "north.db", "NORTH", extra=("--card-range", "17"))
    till = agent.till()
    assert till.register()["card_number"].startswith("290017000001")
    agent.kill()
    conn = connect(agent.db)
    conn.execute("UPDATE meta SET value = '999999' WHERE key = 'card_serial'")
    conn.close()
    agent.start()
    before = db_state(agent.db)
    error = expect_error(till.post("/v1/customers", PERSON), 503, "card_range_exhausted")
    assert "range 17" in error["message"] and "--card-range" in error["message"], error
    assert db_state(agent.db) == before

    agent.kill()                                  # HQ gave range 18: restart with it
    agent.extra = ("--card-range", "18")
    agent.start()
    assert till.register()["card_number"].startswith("290018000001")
