"""The outlet's event log (agent/outbox.py): its operations on a real SQLite file, and the
rule that it is the only module of the project that touches the `outbox` table's rows."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

from agent import customers, gifts, identification, outbox, returns, sales
from agent.outlet import Outlet
from schema.api import (
    CustomerIn,
    GiftReturnIn,
    PaymentIn,
    QuoteIn,
    RedemptionIn,
    ReturnIn,
    ReturnLineIn,
    SaleIn,
)
from schema.events import Event, VisitRecorded

ROOT = Path(__file__).resolve().parents[2]


def register(outlet: Outlet) -> dict[str, str]:
    return customers.register(outlet, CustomerIn(kind="person", given_name="A", surname="B"))


def sell(outlet: Outlet, card: str, key: str, price: int = 60000) -> str:
    quote = sales.quote(outlet, QuoteIn.model_validate(
        {"card": card, "lines": [{"sku": "X", "name": "X", "qty": 1, "unit_price": price}]}))
    sold, _ = sales.sell(outlet, SaleIn(quote_id=quote["quote_id"], payments=[
        PaymentIn(mode="cash", amount=quote["total_net"])]), key)
    return str(sold["sale_id"])


def opening(outlet: Outlet) -> int:
    """How many facts a fresh outlet starts with (its opening gift stock)."""
    with outlet.db.read() as conn:
        return outbox.last_seq(conn)


def a_visit(outlet: Outlet) -> VisitRecorded:
    return VisitRecorded(customer_id=outlet.db.scalar("SELECT customer_id FROM customers"),
                         via="card")


def rows_of(outlet: Outlet, table: str) -> list[dict[str, Any]]:
    return [dict(r) for r in outlet.db.all(f"SELECT * FROM {table} ORDER BY seq, rowid")]


def log(outlet: Outlet) -> list[tuple[int, str, int, int]]:
    """(seq, event_id, seq inside the stored event, acked) for every fact, in order."""
    return [(r["seq"], r["event_id"], Event.model_validate_json(r["event"]).seq, r["acked"])
            for r in outlet.db.all("SELECT seq, event_id, event, acked FROM outbox ORDER BY seq")]


# --- renumbering after the outlet's database was restored ------------------------------------


def test_renumber_moves_pending_facts_past_hq_keeping_their_ids_and_the_rows_that_carry_them(
        outlet: Outlet) -> None:
    n = opening(outlet)                                           # the opening gift stock
    card = register(outlet)["card_number"]                       # n + 1
    sell(outlet, card, "k1")                                      # n + 2
    with outlet.db.write() as conn:
        outbox.mark_acked(conn, n + 2)                            # HQ has them
    identification.identify(outlet, "card", card, "T1")           # n + 3: a visit
    handed, _ = gifts.redeem(outlet, RedemptionIn(card=card, gift_sku="GIFT-MUG"), "r1")  # n + 4
    sale_id = sell(outlet, card, "k2")                            # n + 5
    returns.give_back(outlet, ReturnIn(sale_id=sale_id, lines=[ReturnLineIn(sku="X", qty=1)]),
                      "ret1")                                     # n + 6
    returns.give_gift_back(outlet, handed["redemption_id"], GiftReturnIn(), "g1")  # n + 7
    before = log(outlet)
    carriers = {t: rows_of(outlet, t) for t in outbox.SEQ_CARRIERS}
    assert all(carriers.values()), "every carrier must hold a row for this test to mean much"

    with outlet.db.write() as conn:  # HQ already holds up to n + 9 from the lost disk
        moved = outbox.renumber(conn, first=n + 3, hq_last_seq=n + 9)

    assert moved == 5

    def shift(seq: int) -> int:
        return seq + 7 if seq >= n + 3 else seq

    assert log(outlet) == [(shift(seq), event_id, shift(seq), acked)
                           for seq, event_id, _inner, acked in before]
    for table, rows in carriers.items():
        assert rows_of(outlet, table) == [dict(r, seq=shift(r["seq"])) for r in rows], table
    with outlet.db.write() as conn:
        assert outbox.append(conn, "T", a_visit(outlet)).seq == n + 15
        assert outbox.seq_floor(conn) == n + 9


def test_renumber_with_nothing_pending_from_there_changes_nothing(outlet: Outlet) -> None:
    n = opening(outlet)
    card = register(outlet)["card_number"]
    sell(outlet, card, "k1")
    with outlet.db.write() as conn:
        outbox.mark_acked(conn, n + 2)
    before = (log(outlet), rows_of(outlet, "sales"))
    with outlet.db.write() as conn:
        assert outbox.renumber(conn, first=n + 3, hq_last_seq=n + 9) == 0
    assert (log(outlet), rows_of(outlet, "sales")) == before


def test_every_local_table_that_carries_a_fact_number_is_renumbered(outlet: Outlet) -> None:
    tables = [r[0] for r in outlet.db.all(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name != 'outbox'")]
    with_seq = {t for t in tables
                if any(c["name"] == "seq" for c in outlet.db.all(f"PRAGMA table_info({t})"))}
    assert with_seq == set(outbox.SEQ_CARRIERS)


# --- the rest of the log's operations ----------------------------------------------------------


def test_acked_through_is_the_last_fact_hq_acknowledged(outlet: Outlet) -> None:
    n = opening(outlet)
    card = register(outlet)["card_number"]
    sell(outlet, card, "k1")
    with outlet.db.write() as conn:
        assert outbox.acked_through(conn) == 0
        outbox.mark_acked(conn, n + 1)
        assert outbox.acked_through(conn) == n + 1


def test_requeue_after_sends_again_everything_past_what_hq_holds(outlet: Outlet) -> None:
    n = opening(outlet)
    card = register(outlet)["card_number"]
    sell(outlet, card, "k1")
    sell(outlet, card, "k2")
    with outlet.db.write() as conn:
        outbox.mark_acked(conn, n + 3)
        assert outbox.requeue_after(conn, n + 1) == 2
        assert [e.seq for e in outbox.pending(conn)] == [n + 2, n + 3]
        assert outbox.acked_through(conn) == n + 1


def test_raise_floor_numbers_new_facts_after_hq_only_when_hq_is_ahead(outlet: Outlet) -> None:
    n = opening(outlet)
    register(outlet)
    with outlet.db.write() as conn:
        outbox.raise_floor(conn, n)  # HQ holds no more than we do: nothing changes
        assert outbox.append(conn, "T", a_visit(outlet)).seq == n + 2
        outbox.raise_floor(conn, n + 10)  # HQ holds facts of ours this database lost
        assert outbox.append(conn, "T", a_visit(outlet)).seq == n + 11
        assert outbox.seq_floor(conn) == n + 10


def test_customers_with_pending_names_only_those_with_facts_hq_has_not_folded_in(
        outlet: Outlet) -> None:
    n = opening(outlet)
    first, second = register(outlet)["customer_id"], register(outlet)["customer_id"]
    with outlet.db.read() as conn:
        ids = [first, second, "not-a-customer"]
        assert outbox.customers_with_pending(conn, n, ids) == {first, second}
        assert outbox.customers_with_pending(conn, n + 1, ids) == {second}
        assert outbox.customers_with_pending(conn, n + 2, ids) == set()
        assert outbox.customers_with_pending(conn, n, []) == set()


# --- one owner: no other module holds SQL that names the table ----------------------------------

OWNER = "agent/outbox.py"
# Modules that may still name the table, each with what it may do and why. The scan fails
# if one of them stops needing its exemption, so this list cannot go stale.
MAY_NAME_IN_SQL = {
    "schema/agent_tables.py": "the DDL: forward-only migrations declare every outlet table",
    "bench/till.py": "the raw-SQLite floor writes a sale by hand on purpose (and reads one "
                     "stored event to size it): it measures what the agent's code costs",
    "bench/modem.py": "reads a finished run's events from a closed file, read-only, to size "
                      "the JSON push it compares the modem's encoding with",
}
MAY_NAME_ONLY = {
    "schema/reports.py": "tells an outlet's database from HQ's by the table's existence; "
                         "it runs no SQL against the table",
}
SQL_NAMING = re.compile(r"\b(?:FROM|INTO|UPDATE|JOIN|TABLE|ON)\s+outbox\b", re.IGNORECASE)


def project_modules() -> list[Path]:
    """Every Python file of the project except its tests (which inspect state from outside
    on purpose) and anything hidden or installed."""
    skip = {"tests", "build", "dist"}
    return sorted(p for p in ROOT.rglob("*.py")
                  if not any(part in skip or part.startswith(".") or part.endswith(".egg-info")
                             for part in p.relative_to(ROOT).parts))


def strings_in(tree: ast.AST) -> list[ast.Constant]:
    """String literals that are not docstrings (prose may say "outbox")."""
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef,
                                       ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    return [n for n in ast.walk(tree) if isinstance(n, ast.Constant)
            and isinstance(n.value, str) and id(n) not in docstrings]


def naming(path: Path) -> tuple[list[str], list[str]]:
    """(lines with SQL naming the table, lines naming it as a bare string)."""
    tree = ast.parse(path.read_text(), str(path))
    sql, bare = [], []
    for node in strings_in(tree):
        where = f"{path.relative_to(ROOT)}:{node.lineno}"
        if SQL_NAMING.search(node.value):
            sql.append(where)
        elif node.value.strip().lower() == "outbox":
            bare.append(where)
    return sql, bare


def test_no_module_but_agent_outbox_holds_sql_naming_the_outbox_table() -> None:
    modules = project_modules()
    assert ROOT / OWNER in modules and len(modules) > 50
    offenders, used = [], set()
    for path in modules:
        name = path.relative_to(ROOT).as_posix()
        if name == OWNER:
            continue
        sql, bare = naming(path)
        if sql or bare:
            used.add(name)
        if name in MAY_NAME_IN_SQL:
            continue
        offenders += sql if name in MAY_NAME_ONLY else sql + bare
    assert not offenders, f"only {OWNER} may touch the outbox table; found: {offenders}"
    stale = (set(MAY_NAME_IN_SQL) | set(MAY_NAME_ONLY)) - used
    assert not stale, f"exemptions no longer needed: {sorted(stale)}"
