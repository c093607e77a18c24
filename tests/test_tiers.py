"""The two tiers of the suite (tests/conftest.py) and the in-process kit they rest on.

Which tests are slow follows from explicit lists (process fixtures by the file defining
them, tests that spawn, tests on real line time); the lists name only what exists; a test
of the fast tier cannot start a process. The in-process agent and HQ are the apps the
services build, and a `Session` over a TestClient speaks like requests.
"""

from __future__ import annotations

import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import pytest
from agentkit import InProcessAgent, expect_error
from testkit.inprocess import InProcessHQ, cli

from schema.errors import ConfigError


def tiers(request: pytest.FixtureRequest) -> ModuleType:
    conftest = request.config.rootpath / "tests" / "conftest.py"
    module = request.config.pluginmanager.get_plugin(str(conftest))
    assert isinstance(module, ModuleType), "tests/conftest.py is not loaded"
    return module


# --- the tiers ------------------------------------------------------------------------------
def test_a_process_fixture_puts_a_test_in_the_slow_tier_by_where_it_is_defined(
        request: pytest.FixtureRequest) -> None:
    slow_because = tiers(request).slow_because
    root = "tests/conftest.py"
    assert slow_because("tests/agent/test_x.py", "test_y",
                        {"till": root, "agent": root, "tmp_path": ""}) is None
    assert slow_because("tests/agent/test_x.py", "test_y",
                        {"till": root, "agent_server": root}) == \
        "uses agent_server (tests/conftest.py)"
    # `hq` in process (tests/hq) is fast; the `hq` process of a module is slow
    assert slow_because("tests/hq/test_x.py", "test_y", {"hq": "tests/hq/conftest.py"}) is None
    where = "tests/sync/test_transport_conformance.py"
    assert slow_because(where, "test_y", {"hq": where}) == f"uses hq ({where})"


def test_a_test_that_spawns_or_waits_on_line_time_is_in_the_slow_tier(
        request: pytest.FixtureRequest) -> None:
    slow_because = tiers(request).slow_because
    assert slow_because("tests/agent/test_crash.py", "test_anything", {}) == "starts processes"
    assert slow_because("tests/agent/test_till_api.py",
                        "test_listening_beyond_loopback_without_a_till_token_is_refused",
                        {}) == "starts processes"
    assert slow_because("tests/agent/test_till_api.py", "test_quote_changes_nothing", {}) is None
    assert slow_because("tests/sync/test_modemchannel.py",
                        "test_200kb_at_33600_with_bit_errors_arrives_intact_in_near_line_time",
                        {}) == "runs in real time"


def test_a_test_of_the_fast_tier_cannot_start_a_process(request: pytest.FixtureRequest) -> None:
    assert request.node.get_closest_marker("slow") is None
    with pytest.raises(AssertionError, match=r"starts a process \(\['true'\]\) in the fast tier"):
        subprocess.run(["true"], check=False)


def test_the_lists_name_only_files_fixtures_and_tests_that_exist(
        request: pytest.FixtureRequest) -> None:
    module = tiers(request)
    root = request.config.rootpath
    named: list[tuple[str, str]] = [(path, name) for path, names in module.PROCESS_FIXTURES.items()
                                    for name in names]
    for table in (module.SPAWNS, module.REAL_TIME):
        for path, names in table.items():
            assert (root / path).is_file(), path
            if names != module.EVERY_TEST:
                named += [(path, name) for name in names]
    for path, name in named:
        source = (root / path).read_text()
        assert re.search(rf"^\s*def {name}\(", source, re.MULTILINE), f"{path} has no {name}"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


# --- the in-process kit ---------------------------------------------------------------------
def test_a_session_in_process_speaks_like_requests(tmp_path: Path) -> None:
    shop = InProcessAgent(tmp_path / "outlet.db", "T", till_token="till-secret-1")
    try:
        bare, good = shop.session(), shop.till().http
        assert bare.headers == {} and good.headers == {"Authorization": "Bearer till-secret-1"}
        assert not bare.get(shop.url + "/v1/status", timeout=5).ok  # timeout is accepted
        assert good.get(shop.url + "/v1/status", timeout=5).ok
        body = b'{"kind": "person", "given_name": "A", "surname": "B"}'
        json_type = {"Content-Type": "application/json"}
        for raw in (body, body.decode(), iter([body[:10], body[10:]])):  # as requests sends them
            answer = good.post(shop.url + "/v1/customers", data=raw, headers=json_type)
            assert answer.status_code == 201, answer.text
        assert bare.headers == {}  # one session's headers are its own
    finally:
        shop.close()


def test_the_agent_in_process_is_built_as_loyalty_agent_serve_builds_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs a till token"):  # runtime.build's refusal
        InProcessAgent(tmp_path / "open.db", "T", host="0.0.0.0")
    shop = InProcessAgent(tmp_path / "outlet.db", "NORTH")
    try:
        status = shop.till().ok("GET", "/v1/status")
        assert status["outlet_id"] == "NORTH"
        assert shop.db.is_file()
    finally:
        shop.close()


def test_hq_in_process_is_given_outlets_by_the_command_and_keeps_its_tolerance(
        tmp_path: Path) -> None:
    hq = InProcessHQ(tmp_path / "hq.db", clock_tolerance=3600)
    token = hq.outlet_add("A")
    assert token.startswith("lo_")
    refused = cli("hq", "outlet-add", "--db", str(hq.db), "A")
    assert refused.returncode == 1 and refused.stderr.startswith("error ["), refused.stderr
    hq.start()
    try:
        hello = hq.session().get(hq.url + "/v1/sync/hello", params={"sent_at": now()},
                                 headers={"Authorization": f"Bearer {token}"}).json()
        assert hello["outlet_id"] == "A" and hello["clock_tolerance_s"] == 3600
        expect_error(hq.admin("GET", "/v1/admin/outlets", None, headers={
            "Authorization": "Bearer la_" + "0" * 48}), 401, "unauthorized")
        assert [o["outlet_id"] for o in hq.admin("GET", "/v1/admin/outlets")] == ["A"]
    finally:
        hq.close()
