"""The `loyalty` command (agent.cli) as an operator runs it: a subprocess of this venv."""

from __future__ import annotations

import json
import subprocess
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
