"""Shared fixtures: a REAL agent process over HTTP, a till client, an in-process outlet.

`agent_server` runs `loyalty agent serve` from this virtual environment as a subprocess (the
way an outlet runs it), waits until `GET /v1/status` answers and kills it at teardown. Its
stderr is kept in a file and attached to the report of any test that fails while using it
(this hook does that for every folder's process fixtures). The helpers live in agentkit.py
and tests/testkit/.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from agentkit import AgentProcess, Till
from testkit.processes import failure_sections


# --- pytest plumbing -------------------------------------------------------------------
@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """The one report hook of the suite: a failing test's report gets the stderr of every
    process among its fixtures (agents, HQ, chains, shops), for every test folder."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        report.sections.extend(failure_sections(getattr(item, "funcargs", {}).values()))


@pytest.fixture(scope="session")
def agent_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentProcess]:
    """One real agent process for the session (tests use their own customers)."""
    agent = AgentProcess(tmp_path_factory.mktemp("agent") / "outlet.db", "T")
    agent.start()
    yield agent
    agent.kill()


@pytest.fixture
def start_agent(tmp_path: Path) -> Iterator[Any]:
    """A factory for agents of one test (own database, own options); all killed after."""
    started: list[AgentProcess] = []

    def start(db: Path | None = None, outlet: str = "T", **kw: Any) -> AgentProcess:
        agent = AgentProcess(db or tmp_path / f"outlet{len(started)}.db", outlet, **kw)
        started.append(agent)
        return agent.start()

    yield start
    for agent in started:
        agent.kill()


@pytest.fixture
def till(agent_server: AgentProcess) -> Till:
    return agent_server.till("T1")


@pytest.fixture
def outlet(tmp_path: Path) -> Iterator[Any]:
    """An in-process outlet on a temporary file, for domain-level tests."""
    from agent.outlet import Outlet

    shop = Outlet(tmp_path / "outlet.db", "T")
    yield shop
    shop.close()
