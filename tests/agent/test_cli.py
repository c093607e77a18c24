"""The `loyalty` command (agent.cli) as an operator runs it: a subprocess of this venv."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from agentkit import LOYALTY, free_port, line

from agent import customers, gifts, sales
from agent.outlet import Outlet
from schema.api import CustomerIn, QuoteIn, RedemptionIn, SaleIn


def loyalty(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LOYALTY), *args], capture_output=True, text=True,
                          timeout=timeout, check=False)


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
    assert done.returncode == 0, done.stderr
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
    assert done.returncode == 0, done.stderr
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
    assert done.returncode == 1
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
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.startswith("error [config_error]: "), done.stderr
    assert says in done.stderr


def test_agent_serve_without_a_database_is_a_config_error() -> None:
    done = loyalty("agent", "serve", "--outlet", "X", "--port", "1")
    assert done.returncode == 1 and done.stderr.startswith("error [config_error]: ")


def test_agent_serve_with_a_broken_config_file_is_a_config_error(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text('db = "x.db"\n[[readers]]\nkind = "teleport"\ntill = "T1"\n')
    done = loyalty("agent", "serve", "--config", str(config))
    assert done.returncode == 1 and done.stderr.startswith("error [config_error]: ")
    assert "readers" in done.stderr
    config.write_text("this is = = not toml")
    done = loyalty("agent", "serve", "--config", str(config))
    assert done.returncode == 1 and done.stderr.startswith("error [config_error]: ")


def test_a_usage_mistake_exits_2() -> None:
    assert loyalty("status").returncode == 2
    assert loyalty("no-such-command").returncode == 2


def test_demo_runs_a_day_and_exits_0() -> None:
    done = loyalty("demo", timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Points balance" in done.stdout and "Pending events" in done.stdout


@pytest.mark.parametrize("url", ["htp:/nowhere", "http://", "hq.example:8700", "ftp://hq"])
def test_agent_serve_refuses_an_hq_url_that_is_not_http_with_a_host(
        tmp_path: Path, url: str) -> None:
    done = loyalty("agent", "serve", "--db", str(tmp_path / "n.db"), "--outlet", "N",
                   "--hq", url, "--token", "lo_x", "--port", str(free_port()), timeout=20)
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.startswith("error [config_error]: ") and "hq" in done.stderr, done.stderr
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert not (tmp_path / "n.db").exists()


def test_a_new_database_without_outlet_says_outlet_is_needed(tmp_path: Path) -> None:
    new = tmp_path / "new.db"
    done = loyalty("agent", "serve", "--db", str(new), "--port", str(free_port()), timeout=20)
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.startswith("error [config_error]: "), done.stderr
    assert "--outlet" in done.stderr and "not an outlet database" not in done.stderr
    assert not new.exists()


# --- every failure is one `error [code]: message` line, never a traceback -------------
def one_error_line(done: subprocess.CompletedProcess[str], code: str) -> str:
    assert done.returncode == 1, done.stdout + done.stderr
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
    line = one_error_line(loyalty(*args, timeout=30), "config_error")
    assert "outlet database" in line and "HQ" in line, line
    assert (tables(busy_db), busy_db.read_bytes()) == before


def test_an_agent_on_hqs_database_refuses_it(tmp_path: Path) -> None:
    hq_db = tmp_path / "hq.db"
    assert loyalty("hq", "outlet-add", "--db", str(hq_db), "NORTH").returncode == 0
    before = tables(hq_db)
    line = one_error_line(loyalty("agent", "serve", "--db", str(hq_db), "--outlet", "NORTH",
                                  "--port", str(free_port()), timeout=30), "config_error")
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
        line = one_error_line(loyalty(*args, timeout=30), "storage_unavailable")
    assert "not an outlet database" not in line
    assert "cannot be written" in line and "busy.db" in line, line


def test_an_outlet_database_in_a_read_only_folder_says_so(busy_db: Path) -> None:
    with read_only(busy_db.parent):
        line = one_error_line(loyalty("status", "--db", str(busy_db)), "storage_unavailable")
    assert "not an outlet database" not in line and "folder" in line, line


def test_an_unexpected_failure_is_one_line_and_its_traceback_only_under_verbose(
        busy_db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from agent.cli import main
    from schema import reports

    def broken(*args: object, **kw: object) -> None:
        raise RuntimeError("the report engine broke")

    monkeypatch.setattr(reports, "run", broken)
    done = CliRunner().invoke(main, ["report", "turnover", "--db", str(busy_db)])
    assert done.exit_code == 1, done.output
    assert done.output.splitlines() == [(
        "error [internal_error]: RuntimeError: the report engine broke "
        "(run `loyalty --verbose ...` for details)")], done.output
    verbose = CliRunner().invoke(main, ["--verbose", "report", "turnover", "--db", str(busy_db)])
    assert verbose.exit_code == 1 and "Traceback" in verbose.output, verbose.output
    assert verbose.output.splitlines()[-1].startswith("error [internal_error]: ")


def test_agent_serve_in_a_read_only_folder_is_one_error_line(busy_db: Path) -> None:
    with read_only(busy_db.parent):
        line = one_error_line(loyalty("agent", "serve", "--db", str(busy_db), "--port",
                                      str(free_port()), timeout=30), "storage_unavailable")
    assert "folder" in line, line
