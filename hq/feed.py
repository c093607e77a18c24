"""HQ's side of pull: pages of the compacted change log, rendered from current state.

Promises: entities come in HQ sequence order after the cursor, each as its latest state
(so a bootstrap costs the chain's current size, not its history); urgent changes (bans,
blocked or lost cards) ride at the head of every page until the cursor passes them;
`incorporated_through` and every entity in the page are read in ONE read transaction, so
the page reflects exactly the outlet's events up to it (invariant 4). Outlets see master
data, customers, invoices, the accounts that may use the reception desk (hq/staff.py
`desk_account`: a password hash, never a password) and HQ's stock transfer orders that
involve them (`stock_transfer`: rendered as withdrawn, None, for every other outlet), never
other outlets' tokens, stock or flags, nor any account of the back office.
Must never: write, except the outlet's last-pull time after the page is read and the
clock offset a hello measured.
"""

from __future__ import annotations

import json
import operator
import sqlite3
from dataclasses import dataclass, fields
from typing import Any

from hq import clocks, staff
from hq.chain import Chain
from hq.projection import HQ_OUTLET
from schema import lotstore, tallystore
from schema.customerstore import PROFILE_COLUMNS, entity
from schema.dialect import dialect_of
from schema.events import STOCK_TRANSFER_KIND, StockTransferred, utc_now
from schema.ledger import Tally
from schema.roles import DESK_ACCOUNT_KIND
from schema.sync import MAX_PAGE, PROTOCOL, Hello, PullResponse

URGENT_PER_PAGE = 200


def tally_sql(schema: str = "") -> str:
    """A customer's tally in its wire form (`Tally.to_dict()`, key for key), rendered by
    SQLite for the customer row `c` and its `customer_tally` row `t` (either may be
    missing: defaults); `schema` ("hq.") names an attached database holding the tables.
    A sparse figure (`Tally.SPARSE`) is in the document only when it is not 0."""
    scalars = []
    for f in fields(Tally):
        if f.name in ("items", "gifts", *Tally.SPARSE):
            continue
        scalars.append(f"'{f.name}', coalesce(t.{f.name}, {f.default!r})")
    sparse = ", ".join(f"'{name}', nullif(coalesce(t.{name}, 0), 0)" for name in Tally.SPARSE)
    return f"""json_patch(json_object({", ".join(scalars)},
            'items', json((SELECT json_group_object(sku, json_array(name, qty, max_unit_price))
                FROM (SELECT sku, name, qty, max_unit_price FROM {schema}customer_items
                      WHERE customer_id = c.customer_id ORDER BY sku))),
            'gifts', json((SELECT json_group_object(sku, qty)
                FROM (SELECT sku, qty FROM {schema}customer_gifts
                      WHERE customer_id = c.customer_id ORDER BY sku)))),
            json_object({sparse}))"""


def lots_sql(schema: str = "") -> str:
    """A customer's point lots in their wire form (schema/lotstore.py `of_document`), rendered
    by SQLite for the customer row `c`; `schema` as for `tally_sql`."""
    return f"""json((SELECT json_group_array(json_array(lot_id, earned_on, points, expires_on,
                                                       spendable_on))
            FROM (SELECT lot_id, earned_on, points, expires_on, spendable_on
                  FROM {schema}customer_lots
                  WHERE customer_id = c.customer_id ORDER BY lot_id)))"""


def _customer_sql() -> str:
    """One change of the page as JSON text, rendered by SQLite: the same document as
    `render` (schema.customerstore.entity + tallystore.load), for a customer row without a
    picture (SQLite has no base64; those, and every other kind, are NULL here and take the
    Python path). `json_patch('{}', ...)` drops the null members like `profile_of` does."""
    plain = [c for c in PROFILE_COLUMNS if c not in ("approved_actions", "email_consent")]
    profile = ", ".join(f"'{c}', c.{c}" for c in plain)
    return f"""json_object('kind', ch.kind, 'key', ch.key, 'seq', ch.seq, 'data', json_object(
        'customer_id', c.customer_id,
        'profile', json_patch('{{}}', json_object({profile},
            'approved_actions', json(c.approved_actions),
            'email_consent', CASE WHEN c.email_consent IS NULL THEN NULL
                                  WHEN c.email_consent THEN json('true') ELSE json('false') END)),
        'status', c.status,
        'credit_blocked', CASE WHEN c.credit_blocked THEN json('true') ELSE json('false') END,
        'pin_hash', c.pin_hash,
        'picture', NULL,
        'origin_outlet', c.origin_outlet,
        'created_at', c.created_at,
        'first_visit_at', c.first_visit_at,
        'merged_into', c.merged_into,
        'identifiers', json((SELECT json_group_array(json_object(
                'kind', i.kind, 'value', i.value, 'status', i.status))
            FROM (SELECT kind, value, status FROM identifiers
                  WHERE customer_id = c.customer_id ORDER BY kind, value) i)),
        'tally', {tally_sql()},
        'lots', {lots_sql()}))"""


_RENDER = f"""SELECT ch.kind, ch.key, ch.seq,
        CASE WHEN c.customer_id IS NOT NULL AND c.picture IS NULL THEN {_customer_sql()} END
    FROM (SELECTION) ch
    LEFT JOIN customers c ON ch.kind = 'customer' AND c.customer_id = ch.key
    LEFT JOIN customer_tally t ON t.customer_id = c.customer_id"""
_PAGE_SQL = _RENDER.replace(
    "SELECTION", "SELECT kind, key, seq FROM changes WHERE seq > ? ORDER BY seq LIMIT ?")
_URGENT_SQL = _RENDER.replace(
    "SELECTION", "SELECT kind, key, seq FROM changes WHERE urgent = 1 AND seq > ? ORDER BY seq LIMIT ?")
# PostgreSQL (issue 15, phase 1): every entity takes the Python path (`render`) until the
# JSON above is written for it too (schema/dialect.py's json hooks)
_PG_PAGE_SQL = "SELECT kind, key, seq, NULL FROM changes WHERE seq > ? ORDER BY seq LIMIT ?"
_PG_URGENT_SQL = ("SELECT kind, key, seq, NULL FROM changes WHERE urgent = 1 AND seq > ? "
                  "ORDER BY seq LIMIT ?")


_seq = operator.itemgetter(2)


@dataclass(frozen=True)
class RenderedPage:
    """A PullResponse already serialised (what the router endpoint sends as is)."""

    body: bytes
    changes: int


def render(conn: sqlite3.Connection, kind: str, key: str,
           outlet_id: str | None = None) -> dict[str, Any] | None:
    """An entity as `outlet_id` is sent it (None: withdrawn, or not this outlet's)."""
    if kind == STOCK_TRANSFER_KIND:
        return _transfer(conn, key, outlet_id)
    if kind == "customer":
        row = conn.execute("SELECT * FROM customers WHERE customer_id = ?", (key,)).fetchone()
        if row is None:
            return None
        return entity(conn, row, tallystore.load(conn, key).to_dict(),
                      lotstore.wire(sorted(lotstore.load(conn, key), key=lambda lot: lot.lot_id)))
    if kind == "invoice":
        from hq.invoices import document

        return document(conn, key)
    if kind == DESK_ACCOUNT_KIND:
        return staff.desk_account(conn, key)
    row = conn.execute("SELECT data FROM master WHERE kind = ? AND key = ?", (kind, key)).fetchone()
    return None if row is None else json.loads(row[0])


def _transfer(conn: sqlite3.Connection, event_id: str,
               outlet_id: str | None) -> dict[str, Any] | None:
    """HQ's stock transfer order (its own `stock.transferred` fact) for the two outlets it
    moves stock at: `transfer_id` (the fact's id), the body's fields, `at`."""
    row = conn.execute("SELECT event FROM events WHERE event_id = ? AND outlet_id = ?",
                       (event_id, HQ_OUTLET)).fetchone()
    if row is None:
        return None
    event = json.loads(row[0])
    body = StockTransferred.model_validate(event["body"])
    if outlet_id not in (body.from_outlet, body.to_outlet):
        return None
    return {"transfer_id": event_id, **body.model_dump(), "at": event["at"]}


def hello(chain: Chain, outlet_id: str, sent_at: str | None = None) -> Hello:
    """What HQ holds of this outlet and how far its change log goes (first in every pass).
    With the outlet's clock (`sent_at`), HQ measures its offset (hq/clocks.py) and says it."""
    offset = None
    if sent_at is not None:
        received = chain.clock()  # before waiting for the writer: the time it arrived
        with chain.db.write() as conn:
            offset = clocks.settle(conn, outlet_id, sent_at, received, chain.clock_tolerance_s)
    with chain.db.read() as conn:
        row = conn.execute("SELECT last_seq, card_range FROM outlets WHERE outlet_id = ?",
                           (outlet_id,)).fetchone()
        head = chain.head(conn)
    return Hello(outlet_id=outlet_id, epoch=chain.epoch, last_seq=row["last_seq"], head=head,
                 card_range=row["card_range"], clock_offset_s=offset,
                 clock_tolerance_s=None if offset is None else chain.clock_tolerance_s)


def pull(chain: Chain, outlet_id: str, cursor: int, limit: int = 1000) -> PullResponse:
    """The page as a model (the modem link); the same content as `pull_json`."""
    return PullResponse.model_validate_json(pull_json(chain, outlet_id, cursor, limit).body)


def pull_json(chain: Chain, outlet_id: str, cursor: int, limit: int = 1000) -> RenderedPage:
    """The page as the JSON of a PullResponse (the router endpoint sends these bytes)."""
    limit = max(1, min(limit, MAX_PAGE))
    with chain.db.snapshot() as conn:  # one snapshot for the page (hq/store/base.py)
        page = _page(chain, conn, outlet_id, cursor, limit)
    with chain.db.write() as conn:
        conn.execute("UPDATE outlets SET last_pull_at = ? WHERE outlet_id = ?", (utc_now(), outlet_id))
    return page


def _page(chain: Chain, conn: sqlite3.Connection, outlet_id: str, cursor: int,
          limit: int) -> RenderedPage:
    incorporated = int(conn.execute("SELECT last_seq FROM outlets WHERE outlet_id = ?",
                                    (outlet_id,)).fetchone()[0])
    head = chain.head(conn)
    page_sql, urgent_sql = ((_PG_PAGE_SQL, _PG_URGENT_SQL) if dialect_of(conn).postgres
                            else (_PAGE_SQL, _URGENT_SQL))
    rows = sorted(conn.execute(page_sql, (cursor, limit)), key=_seq)
    new_cursor = rows[-1][2] if rows else max(cursor, 0)
    urgent = sorted(conn.execute(urgent_sql, (new_cursor, URGENT_PER_PAGE)), key=_seq)
    parts = []
    for kind, key, seq, text in [*urgent, *rows]:
        if text is None:  # master data, invoices, withdrawn entities, customers with a picture
            text = json.dumps({"kind": kind, "key": key, "seq": seq,
                               "data": render(conn, kind, key, outlet_id)})
        parts.append(text)
    header = json.dumps({"protocol": PROTOCOL, "epoch": chain.epoch, "cursor": new_cursor,
                         "head": head, "incorporated_through": incorporated,
                         "more": new_cursor < head})
    body = f'{header[:-1]}, "changes": [{", ".join(parts)}]}}'
    return RenderedPage(body.encode(), len(parts))
