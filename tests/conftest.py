"""Shared fixtures and the two tiers of the suite.

The fast tier (`pytest -m "not slow"`, docs/operations.md "Tests") runs in this process: the
till API and HQ's API are answered by the apps the services build, through a TestClient, on
real SQLite files (tests/testkit/inprocess.py). The slow tier holds what needs real
processes or real time: kill -9, sync between processes, card readers, pcscd, the modem line,
the browser, and one real-process run per family of the HTTP contract tests.

Fixtures here: `agent` (an agent in this process, the one `till` speaks to; a test
parametrized with `@pytest.mark.parametrize("agent", TIERS, indirect=True)` also runs against
the real process), `make_agent` (agents of one test, in process, with their own options),
`outlet` (an Outlet for domain tests), and the real processes: `agent_server` (one
`loyalty agent serve` for the session) and `start_agent` (real agents of one test). Every
process's stderr is attached to the report of a failing test that used it. `pg_cluster`: a
throwaway PostgreSQL cluster for the session (tests/testkit/postgres.py), `pg_database` a
new empty database of one test in it, `hq_pg` one with HQ's tables (copied from a template).

`pytest_collection_modifyitems` puts a test in the slow tier (marker `slow`) when it uses a
process fixture (PROCESS_FIXTURES, directly or through another fixture), starts processes
itself (SPAWNS) or runs on real line time (REAL_TIME). The lists are explicit so they can be
reviewed; a test of the fast tier that starts a process anyway fails, naming the lists.
"""

from __future__ import annotations

import inspect
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from agentkit import AgentProcess, Till
from testkit import postgres
from testkit.inprocess import InProcessAgent
from testkit.processes import failure_sections

EVERY_TEST = "*"

# Fixtures that start a real process (or a browser, or the line simulator), by the file
# defining them; a fixture using one of them is covered too.
PROCESS_FIXTURES: dict[str, set[str]] = {
    "tests/conftest.py": {"agent_server", "start_agent", "pg_cluster"},
    "tests/hq/conftest.py": {"hq_process"},
    "tests/e2e/conftest.py": {"rig", "shared_chain"},
    "tests/e2e/test_api_fuzz.py": {"agent", "hq"},
    "tests/web/conftest.py": {"shop", "browser"},
    "tests/web/test_bank_payments.py": {"shop"},
    "tests/web/test_bank_pages_browser.py": {"bank_hq"},
    "tests/web/test_office_browser_postgresql.py": {"pg_shop"},
    "tests/web/test_roles_and_audit.py": {"shop"},
    "tests/hardware/conftest.py": {"pcscd"},
    "tests/sync/modem_fixtures.py": {"modem_line"},  # the modem line runs in real time
    "tests/sync/test_transport_conformance.py": {"hq"},
}

# Tests that start processes themselves (`loyalty` commands, servers, pcscd): a whole
# module, or the tests named (every parametrization of each).
SPAWNS: dict[str, set[str] | str] = {
    "tests/agent/test_cli.py": {  # chattr +i makes a file read-only even for root
        "test_a_read_only_outlet_database_is_called_read_only",
        "test_an_outlet_database_in_a_read_only_folder_says_so",
        "test_agent_serve_in_a_read_only_folder_is_one_error_line"},
    "tests/agent/test_snapshot_apply.py": {"test_bootstrap_command_says_what_is_wrong_and_exits_1"},
    "tests/agent/test_unavailable.py": EVERY_TEST,  # real agents on faulty storage
    "tests/e2e/test_file_modes.py": EVERY_TEST,
    "tests/e2e/test_one_server_per_database.py": EVERY_TEST,
    "tests/hq/test_invoice_document.py": EVERY_TEST,  # loyalty hq ..., pdftotext, zbarimg
    "tests/hq/test_invoice_returns.py": {  # pdftotext reads the PDF back
        "test_the_invoice_pdf_lists_the_return_credit_by_its_receipt_and_totals_net"},
    "tests/hq/test_mail.py": EVERY_TEST,
    "tests/hq/test_statement_import.py": EVERY_TEST,  # loyalty hq import-statement
    "tests/web/test_card_barcode.py": {  # headless Chromium renders, zbarimg decodes
        "test_the_drawn_club_card_number_scans_back"},
    "tests/sync/test_token_refused.py": EVERY_TEST,
    "tests/agent/test_crash.py": EVERY_TEST,  # kill -9 of a real agent
    "tests/agent/test_readers.py": EVERY_TEST,  # agents with serial and PC/SC readers
    "tests/hq/test_hq_cli.py": EVERY_TEST,  # `loyalty hq ...` as a subprocess
    "tests/hq/test_hq_processes.py": EVERY_TEST,  # several `loyalty hq serve` on PostgreSQL
    "tests/loyalty/test_demo_keep.py": {  # HQ served on the kept database, as printed
        "test_hq_started_as_printed_on_the_kept_database_lets_the_printed_staff_login_in"},
    "tests/sync/test_kill.py": EVERY_TEST,
    "tests/sync/test_linesim.py": {"test_cli_prints_paths_and_serves_modems"},
    "tests/agent/test_till_api.py": {
        "test_listening_beyond_loopback_without_a_till_token_is_refused"},
    "tests/hq/test_clock_skew.py": {"test_the_tolerance_is_an_hq_setting"},
    "tests/docs/test_docs.py": {"test_sh_block_runs_as_written_and_again"},
    "tests/sync/test_faults.py": {"test_faulty_network_heals_to_one_truth"},
    "tests/test_pgkit.py": {  # PostgreSQL clusters of their own
        "test_a_cluster_listens_on_its_own_socket_only_and_is_gone_after_stop",
        "test_a_cluster_of_a_test_run_killed_with_sigkill_is_removed_by_the_next_start",
        "test_a_cluster_starts_for_a_user_who_is_not_root"},
    "tests/hq/test_store_seam.py": {"test_a_server_that_goes_away_is_storage_unavailable_naming_it"},
    "tests/hq/test_store_migrate.py": {  # kill -9 of `loyalty hq migrate` mid-copy
        "test_migrate_killed_mid_copy_leaves_the_target_empty_and_a_second_run_completes"},
    "tests/test_testkit.py": {
        "test_a_service_that_exits_fails_at_once_with_the_tail_of_its_log",
        "test_a_service_whose_port_is_still_held_starts_once_it_is_free",
        "test_check_files_tells_a_converged_chain_from_one_still_pulling_or_missing_events"},
}

# Tests whose time is a simulated line's real time, not computing.
REAL_TIME: dict[str, set[str]] = {
    "tests/sync/test_modemchannel.py": {
        "test_200kb_at_33600_with_bit_errors_arrives_intact_in_near_line_time"},
}


# --- pytest plumbing -------------------------------------------------------------------
@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """The one report hook of the suite: a failing test's report gets the stderr of every
    process among its fixtures (agents, HQ, chains, shops), for every test folder."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        report.sections.extend(failure_sections(getattr(item, "funcargs", {}).values()))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = config.rootpath
    for item in items:
        defs = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})
        fixtures = {name: defined_in(defs[name][-1].func, root)
                    for name in getattr(item, "fixturenames", ()) if defs.get(name)}
        why = slow_because(item.path.relative_to(root).as_posix(),
                           getattr(item, "originalname", item.name), fixtures)
        if why and item.get_closest_marker("slow") is None:
            item.add_marker(pytest.mark.slow(reason=why))


def slow_because(module: str, test: str, fixtures: dict[str, str]) -> str | None:
    """Why a test is in the slow tier (None: it is not), from its module, its name without
    parameters and the fixtures it uses, each with the file that defines it."""
    spawned = SPAWNS.get(module, set())
    if spawned == EVERY_TEST or test in spawned:
        return "starts processes"
    if test in REAL_TIME.get(module, set()):
        return "runs in real time"
    for fixture, where in fixtures.items():
        if fixture in PROCESS_FIXTURES.get(where, set()):
            return f"uses {fixture} ({where})"
    return None


def defined_in(func: Callable[..., Any], root: Path) -> str:
    try:
        path = Path(inspect.getsourcefile(inspect.unwrap(func)) or "")
        return path.resolve().relative_to(root).as_posix()
    except (TypeError, ValueError):
        return ""


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """A test of the fast tier may not start a process: it would belong in the lists above."""
    if item.get_closest_marker("slow") is not None:
        yield
        return
    popen = subprocess.Popen

    class Refused(popen):  # type: ignore[type-arg,misc,valid-type]
        def __init__(self, args: Any, *rest: Any, **kw: Any) -> None:
            raise AssertionError(
                f"{item.nodeid} starts a process ({args!r}) in the fast tier: run it in "
                "process (tests/testkit/inprocess.py) or list it in tests/conftest.py "
                "(PROCESS_FIXTURES or SPAWNS)")

    subprocess.Popen = Refused  # type: ignore[misc]
    try:
        yield
    finally:
        subprocess.Popen = popen  # type: ignore[misc]


# --- agents in this process ------------------------------------------------------------
@pytest.fixture(scope="session")
def agent(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[InProcessAgent | AgentProcess]:
    """The agent of outlet T that `till` speaks to, in this process, shared by the session
    (tests use their own customers). Parametrized indirectly with "real process" (TIERS), it
    is `agent_server` instead."""
    if getattr(request, "param", "in process") == "real process":
        yield request.getfixturevalue("agent_server")
        return
    shop = InProcessAgent(tmp_path_factory.mktemp("agent") / "outlet.db", "T")
    yield shop
    shop.close()


@pytest.fixture
def till(agent: InProcessAgent | AgentProcess) -> Till:
    return agent.till("T1")


@pytest.fixture
def make_agent(tmp_path: Path) -> Iterator[Callable[..., InProcessAgent]]:
    """A factory for in-process agents of one test (own database, own options)."""
    made: list[InProcessAgent] = []

    def make(db: Path | None = None, outlet: str = "T", **options: Any) -> InProcessAgent:
        shop = InProcessAgent(db or tmp_path / f"outlet{len(made)}.db", outlet, **options)
        made.append(shop)
        return shop

    yield make
    for shop in made:
        shop.close()


@pytest.fixture
def outlet(tmp_path: Path) -> Iterator[Any]:
    """An in-process outlet on a temporary file, for domain-level tests."""
    from agent.outlet import Outlet

    shop = Outlet(tmp_path / "outlet.db", "T")
    yield shop
    shop.close()


# --- real agent processes --------------------------------------------------------------
@pytest.fixture(scope="session")
def agent_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentProcess]:
    """One real `loyalty agent serve` for the session (tests use their own customers)."""
    server = AgentProcess(tmp_path_factory.mktemp("agent") / "outlet.db", "T")
    server.start()
    yield server
    server.kill()


@pytest.fixture
def start_agent(tmp_path: Path) -> Iterator[Any]:
    """A factory for real agents of one test (own database, own options); all killed after."""
    started: list[AgentProcess] = []

    def start(db: Path | None = None, outlet: str = "T", **kw: Any) -> AgentProcess:
        server = AgentProcess(db or tmp_path / f"outlet{len(started)}.db", outlet, **kw)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.kill()


# --- throwaway PostgreSQL (tests/testkit/postgres.py) -------------------------------------
@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[postgres.Cluster]:
    """A PostgreSQL cluster of this test run, removed at its end. Skipped, saying why, where
    PostgreSQL is not installed; under CI that fails instead (install.sh --dev installs it)."""
    reason = postgres.missing()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is needed under CI: {reason}")
        pytest.skip(reason)
    cluster = postgres.Cluster.start()
    yield cluster
    cluster.stop()


def _migrated_hq(url: str) -> None:
    from hq.store.postgres import PgStore

    PgStore(url).close()


@pytest.fixture
def hq_pg(pg_cluster: postgres.Cluster) -> Iterator[str]:
    """The URL of a new PostgreSQL database with HQ's tables (from a template made once:
    ~0.1-0.3 s instead of migrating again), dropped after."""
    url = pg_cluster.database(template=pg_cluster.template("hq", _migrated_hq))
    yield url
    pg_cluster.drop(url)


@pytest.fixture
def pg_database(pg_cluster: postgres.Cluster) -> Iterator[str]:
    """The URL of a new, empty database of this test (UTF-8, C order), dropped after."""
    url = pg_cluster.database()
    yield url
    pg_cluster.drop(url)
