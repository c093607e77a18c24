"""The `loyalty` command as an operator runs it: the agent's commands (status, sync, agent
serve), reports and HQ's commands on the wrong files, and the one error line of every failure.

The contract is checked in process: click's CliRunner on `loyalty.cli.main`, the command the
console script runs, over real SQLite files. A few checks run the installed script as a
subprocess of this venv (marked slow): that it is that command, and the demo.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from agentkit import free_port, line
from click.testing import CliRunner, Result
from testkit import cli

from agent import customers, gifts, sales
from agent.outlet import Outlet
from agent.replica import set_meta
from loyalty.cli import main
from schema.api import CustomerIn, QuoteIn, RedemptionIn, SaleIn


def loyalty(*args: str) -> Result:
    """`loyalty ARGS...` in process; stdout and stderr apart, as an operator's shell has them."""
    return CliRunner().invoke(main, list(args))


@pytest.fixture(autouse=True)
def no_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """`agent serve` and `hq serve` run in process here, for refusals only: one that got as
    far as serving fails the test at once instead of serving until the timeout (and `hq
    serve`'s GC tuning is put back)."""
    from web import serving

    def refuse(*args: object, **kw: object) -> None:
        raise AssertionError("the command started serving: it should have refused first")

    monkeypatch.setattr(serving, "run", refuse)
    thresholds = gc.get_threshold()
    yield
    gc.set_threshold(*thresholds)


@pytest.fixture
def busy_db(tmp_path: Path) -> Path:
    """An outlet database with 2 customers, 3 sales and a redemption, closed again."""
    path = tmp_path / "busy.db"
    shop = Outlet(path, "NORTH")
    try:
        card = customers.register(shop, CustomerIn(kind="person", given_name="A", surname="B",
                                                   category="A"))["card_number"]
        customers.register(shop, CustomerIn(kind="organisation", name="Org"))
        for n, price in enumerate((50_000, 1_000, 2_500)):
            lines = [line(f"S-{n}", price)]
            total = sales.quote(shop, QuoteIn(card=card, lines=lines))["total_net"]  # type: ignore[arg-type]
            sales.sell(shop, SaleIn(card=card, lines=lines,  # type: ignore[arg-type]
                                    payments=[{"mode": "cash", "amount": total}]), f"k{n}")  # type: ignore[list-item]
        gifts.redeem(shop, RedemptionIn(card=card, gift_sku="GIFT-MUG"), None)
    finally:
        shop.close()
    return path


def outbox_count(path: Path) -> int:
    shop = Outlet(path)
    try:
        return int(shop.db.scalar("SELECT COUNT(*) FROM outbox"))
    finally:
        shop.close()


def test_status_prints_a_table_for_the_store_manager(busy_db: Path) -> None:
    done = loyalty("status", "--db", str(busy_db))
    assert done.exit_code == 0, done.stderr
    rows = {}
    for text in done.stdout.splitlines():
        key, _, value = text.partition("  ")
        rows[key.strip()] = value.strip()
    assert rows["Outlet"] == "NORTH"
    assert rows["Pending events"] == str(outbox_count(busy_db))
    assert rows["Customers"] == "2" and rows["Sales"] == "3" and rows["Redemptions"] == "1"
    assert rows["Last sync"] == "never" and rows["Last sync error"] == "-"
    assert rows["Last sale"].startswith("20")


def test_status_json_has_the_same_figures(busy_db: Path) -> None:
    done = loyalty("status", "--db", str(busy_db), "--json")
    assert done.exit_code == 0, done.stderr
    figures = json.loads(done.stdout)
    assert figures["outlet_id"] == "NORTH"
    assert figures["pending_events"] == outbox_count(busy_db)
    assert figures["counts"]["sales"] == 3 and figures["counts"]["customers"] == 2
    assert figures["counts"]["redemptions"] == 1
    assert figures["last_sync_at"] is None and figures["cursor"] == 0


def test_status_of_a_file_that_is_not_a_database_is_a_clean_error(tmp_path: Path) -> None:
    bad = tmp_path / "notes.db"
    bad.write_text("these are my shopping notes, not a database " * 10)
    done = loyalty("status", "--db", str(bad))
    assert done.exit_code == 1
    assert done.stderr.startswith("error [config_error]: ")
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("args, says", [
    (["--host", "0.0.0.0"], "till token"),
    (["--outlet", "SOUTH"], "NORTH"),
    (["--hq", "http://127.0.0.1:9"], "token"),
])
def test_agent_serve_refuses_bad_configuration_with_config_error(
        busy_db: Path, args: list[str], says: str) -> None:
    base = ["agent", "serve", "--db", str(busy_db), "--port", "1"]
    if "--outlet" not in args:
        base += ["--outlet", "NORTH"]
    done = loyalty(*base, *args)
    assert done.exit_code == 1, done.stdout + done.stderr
    assert done.stderr.startswith("error [config_error]: "), done.stderr
    assert says in done.stderr


def test_agent_serve_without_a_database_is_a_config_error() -> None:
    done = loyalty("agent", "serve", "--outlet", "X", "--port", "1")
    assert done.exit_code == 1 and done.stderr.startswith("error [config_error]: ")


def test_agent_serve_with_a_broken_config_file_is_a_config_error(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text('db = "x.db"\n[[readers]]\nkind = "teleport"\ntill = "T1"\n')
    done = loyalty("agent", "serve", "--config", str(config))
    assert done.exit_code == 1 and done.stderr.startswith("error [config_error]: ")
    assert "readers" in done.stderr
    config.write_text("this is = = not toml")
    done = loyalty("agent", "serve", "--config", str(config))
    assert done.exit_code == 1 and done.stderr.startswith("error [config_error]: ")


def test_a_usage_mistake_exits_2() -> None:
    assert loyalty("status").exit_code == 2
    assert loyalty("no-such-command").exit_code == 2


# --- the installed script, as a subprocess -------------------------------------------------
@pytest.mark.slow
def test_the_installed_script_is_the_composition_roots_command(busy_db: Path) -> None:
    """.venv/bin/loyalty runs loyalty.cli:main: the same figures, the same one error line."""
    done = cli("status", "--db", str(busy_db), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == json.loads(loyalty("status", "--db", str(busy_db),
                                                         "--json").stdout)
    missing = str(busy_db.parent / "no-such.db")
    failed = cli("report", "turnover", "--db", missing)
    assert failed.returncode == 1 and "Traceback" not in failed.stderr, failed.stderr
    assert failed.stderr == loyalty("report", "turnover", "--db", missing).stderr


@pytest.fixture(scope="module")
def demo_run() -> subprocess.CompletedProcess[str]:
    return cli("demo", timeout=120)


@pytest.mark.slow
def test_demo_runs_a_day_and_exits_0(demo_run: subprocess.CompletedProcess[str]) -> None:
    assert demo_run.returncode == 0, demo_run.stdout + demo_run.stderr
    assert "Points balance" in demo_run.stdout and "Pending events" in demo_run.stdout


@pytest.mark.slow
def test_demo_shows_money_as_money_with_its_currency(
        demo_run: subprocess.CompletedProcess[str]) -> None:
    assert demo_run.returncode == 0, demo_run.stdout + demo_run.stderr
    for text in demo_run.stdout.splitlines():
        if "discount" in text.lower() and not text.strip().startswith("|"):
            # outside a receipt an amount says its currency: "30.02 EUR", never "3002"
            assert re.search(r"discount given [0-9,]+\.[0-9]{2} EUR\b", text), text


@pytest.mark.slow
def test_demo_masks_every_card_the_same_way(demo_run: subprocess.CompletedProcess[str]) -> None:
    assert demo_run.returncode == 0, demo_run.stdout + demo_run.stderr
    masks = set(re.findall(r"\*+[0-9]{4}", demo_run.stdout))
    assert len(masks) == 1, masks
    assert masks.pop().startswith("****0")
    assert not re.search(r"[0-9]{13}", demo_run.stdout), "a whole card number was printed"


ISO_TIME = re.compile(r"[0-9]T[0-9]{2}:|:[0-9]{2}\.[0-9]{3}")  # an engineer's raw timestamp
EPOCH = "5f0c8e2a9b7d4c1e"


@pytest.fixture
def synced_db(busy_db: Path) -> Path:
    """busy_db as if it had synced with HQ 3 minutes ago (what a chain outlet has)."""
    shop = Outlet(busy_db)
    try:
        at = (datetime.now(UTC) - timedelta(minutes=3)).isoformat().replace("+00:00", "Z")
        with shop.db.write() as conn:
            for key, value in (("last_sync_at", at), ("hq_epoch", EPOCH), ("cursor", "4711")):
                set_meta(conn, key, value)
    finally:
        shop.close()
    return busy_db


def status_rows(stdout: str) -> dict[str, str]:
    rows = {}
    for text in stdout.splitlines():
        key, _, value = text.partition("  ")
        rows[key.strip()] = value.strip()
    return rows


@pytest.fixture
def three_hours_east(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process's local time zone is a POSIX zone 3 hours east of UTC, then put back."""
    monkeypatch.setenv("TZ", "LOC-3")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("three_hours_east")
def test_status_for_a_store_manager_has_local_times_and_no_engineer_fields(
        synced_db: Path) -> None:
    done = loyalty("status", "--db", str(synced_db))
    assert done.exit_code == 0, done.stderr
    assert not ISO_TIME.search(done.stdout), done.stdout
    assert EPOCH not in done.stdout and "4711" not in done.stdout
    assert "cursor" not in done.stdout.lower() and "epoch" not in done.stdout.lower()
    rows = status_rows(done.stdout)
    shown = datetime.now(UTC) - timedelta(minutes=3) + timedelta(hours=3)
    assert rows["Last sync"].startswith(shown.strftime("%Y-%m-%d %H:")), rows["Last sync"]
    assert rows["Last sync"].endswith("(3 min ago)"), rows["Last sync"]
    assert re.fullmatch(r"20[0-9-]{8} [0-9]{2}:[0-9]{2} \(.+\)", rows["Last sale"]), rows


@pytest.mark.usefixtures("three_hours_east")
def test_status_of_a_modem_outlet_shows_its_next_dial_and_last_call(synced_db: Path) -> None:
    moment = datetime.now(UTC) - timedelta(minutes=3)
    ended = moment.isoformat().replace("+00:00", "Z")
    shop = Outlet(synced_db)
    try:
        with shop.db.write() as conn:
            set_meta(conn, "link", "modem")
            set_meta(conn, "last_session", json.dumps({
                "started_at": ended, "ended_at": ended, "result": "ok", "bytes_sent": 227,
                "bytes_received": 899, "connect_bps": 33600}))
    finally:
        shop.close()
    done = loyalty("status", "--db", str(synced_db))
    assert done.exit_code == 0, done.stderr
    rows = status_rows(done.stdout)
    assert rows["Link"] == "modem" and rows["Next dial"] == "not scheduled"
    shown = moment + timedelta(hours=3)  # the zone of three_hours_east
    assert rows["Last call"] == (f"ok at {shown:%Y-%m-%d %H:%M} (3 min ago), 227 B sent, "
                                 "899 B received, 33600 bit/s"), rows["Last call"]


def test_status_verbose_adds_the_engineer_fields(synced_db: Path) -> None:
    done = loyalty("status", "--db", str(synced_db), "--verbose")
    assert done.exit_code == 0, done.stderr
    rows = status_rows(done.stdout)
    assert rows["Cursor"] == "4711" and rows["HQ epoch"] == EPOCH
    assert ISO_TIME.search(rows["last_sync_at"]), rows
    assert rows["Last sync"].endswith("(3 min ago)")


def test_status_json_is_the_full_machine_readable_status(synced_db: Path) -> None:
    done = loyalty("status", "--db", str(synced_db), "--json")
    assert done.exit_code == 0, done.stderr
    figures = json.loads(done.stdout)
    assert figures["cursor"] == 4711 and figures["hq_epoch"] == EPOCH
    assert figures["last_sync_at"].endswith("Z") and figures["last_sale_at"].endswith("Z")
    assert {"outlet_id", "pending_events", "last_sync_error", "counts", "readers"} <= set(figures)


def test_report_on_a_missing_database_file_is_not_found(tmp_path: Path) -> None:
    """docs/reports.md: a missing file is `error [not_found]`, exit 1 (not a usage error)."""
    done = loyalty("report", "turnover", "--db", str(tmp_path / "no-such.db"))
    assert done.exit_code == 1, done.stdout + done.stderr
    assert done.stderr.startswith("error [not_found]: "), done.stderr
    assert "no-such.db" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "no-such.db").exists(), "a report never creates a database"


@pytest.mark.parametrize("url", ["htp:/nowhere", "http://", "hq.example:8700", "ftp://hq"])
def test_agent_serve_refuses_an_hq_url_that_is_not_http_with_a_host(
        tmp_path: Path, url: str) -> None:
    done = loyalty("agent", "serve", "--db", str(tmp_path / "n.db"), "--outlet", "N",
                   "--hq", url, "--token", "lo_x", "--port", str(free_port()))
    assert done.exit_code == 1, done.stdout + done.stderr
    assert done.stderr.startswith("error [config_error]: ") and "hq" in done.stderr, done.stderr
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert not (tmp_path / "n.db").exists()


def test_a_new_database_without_outlet_says_outlet_is_needed(tmp_path: Path) -> None:
    new = tmp_path / "new.db"
    done = loyalty("agent", "serve", "--db", str(new), "--port", str(free_port()))
    assert done.exit_code == 1, done.stdout + done.stderr
    assert done.stderr.startswith("error [config_error]: "), done.stderr
    assert "--outlet" in done.stderr and "not an outlet database" not in done.stderr
    assert not new.exists()


# --- every failure is one `error [code]: message` line, never a traceback -------------
def one_error_line(done: Result, code: str) -> str:
    assert done.exit_code == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error [{code}]: "), done.stderr
    return lines[0]


def tables(path: Path) -> set[str]:
    import sqlite3

    conn = sqlite3.connect(path)
    try:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        conn.close()


def test_a_report_on_a_file_that_is_not_a_database_is_one_error_line(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("milk, bread, eggs\n" * 20)
    line = one_error_line(loyalty("report", "turnover", "--db", str(notes)), "invalid_request")
    assert "notes.txt" in line and "not a" in line


@pytest.mark.parametrize("command", [["hq", "outlet-add", "SOUTH"], ["hq", "serve"],
                                     ["hq", "outlets"], ["hq", "admin-token"]])
def test_hq_commands_on_an_outlet_database_refuse_it_and_change_nothing(
        busy_db: Path, command: list[str]) -> None:
    before = tables(busy_db), busy_db.read_bytes()
    args = [*command[:2], "--db", str(busy_db), *command[2:]]
    if command[1] == "serve":
        args += ["--port", str(free_port())]
    line = one_error_line(loyalty(*args), "config_error")
    assert "outlet database" in line and "HQ" in line, line
    assert (tables(busy_db), busy_db.read_bytes()) == before


def test_an_agent_on_hqs_database_refuses_it(tmp_path: Path) -> None:
    hq_db = tmp_path / "hq.db"
    assert loyalty("hq", "outlet-add", "--db", str(hq_db), "NORTH").exit_code == 0
    before = tables(hq_db)
    line = one_error_line(loyalty("agent", "serve", "--db", str(hq_db), "--outlet", "NORTH",
                                  "--port", str(free_port())), "config_error")
    assert "HQ's database" in line and "outlet" in line, line
    assert tables(hq_db) == before


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    """Really read-only for this user: chmod for an ordinary user; for root (who ignores
    modes) the immutable attribute, which even root cannot write through."""
    if os.geteuid() != 0:
        mode = path.stat().st_mode
        path.chmod(0o555 if path.is_dir() else 0o444)
        try:
            yield
        finally:
            path.chmod(mode)
        return
    if subprocess.run(["chattr", "+i", str(path)], capture_output=True,
                      check=False).returncode != 0:
        pytest.skip("no immutable attribute on this filesystem (chattr +i)")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


@pytest.mark.parametrize("command", [["agent", "serve", "--port", "0"], ["status"], ["sync"]])
def test_a_read_only_outlet_database_is_called_read_only(busy_db: Path,
                                                         command: list[str]) -> None:
    args = [*command[:2], "--db", str(busy_db), *command[2:]] if command[0] == "agent" \
        else [command[0], "--db", str(busy_db)]
    with read_only(busy_db):
        line = one_error_line(loyalty(*args), "storage_unavailable")
    assert "not an outlet database" not in line
    assert "cannot be written" in line and "busy.db" in line, line


def test_an_outlet_database_in_a_read_only_folder_says_so(busy_db: Path) -> None:
    with read_only(busy_db.parent):
        line = one_error_line(loyalty("status", "--db", str(busy_db)), "storage_unavailable")
    assert "not an outlet database" not in line and "folder" in line, line


def test_an_unexpected_failure_is_one_line_and_its_traceback_only_under_verbose(
        busy_db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from schema import reports

    def broken(*args: object, **kw: object) -> None:
        raise RuntimeError("the report engine broke")

    monkeypatch.setattr(reports, "run", broken)
    done = loyalty("report", "turnover", "--db", str(busy_db))
    assert done.exit_code == 1, done.output
    assert done.output.splitlines() == [(
        "error [internal_error]: RuntimeError: the report engine broke "
        "(run `loyalty --verbose ...` for details)")], done.output
    verbose = loyalty("--verbose", "report", "turnover", "--db", str(busy_db))
    assert verbose.exit_code == 1 and "Traceback" in verbose.output, verbose.output
    assert verbose.output.splitlines()[-1].startswith("error [internal_error]: ")


def test_agent_serve_in_a_read_only_folder_is_one_error_line(busy_db: Path) -> None:
    with read_only(busy_db.parent):
        line = one_error_line(loyalty("agent", "serve", "--db", str(busy_db), "--port",
                                      str(free_port())), "storage_unavailable")
    assert "folder" in line, line
