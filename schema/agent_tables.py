"""The outlet agent's SQLite tables, as forward-only named migrations.

Never edit a migration that has shipped: add a new one. `tests/schema` opens a database
written by the first version (kept in tests/fixtures) to prove nothing is lost on upgrade.

What the tables hold:
- `outbox`: every local fact, in gap-free local sequence, until HQ has it (the outlet's
  event log; rows are kept after acknowledgement for local reports).
- `customers`, `identifiers`: the replica of master data plus local registrations.
- `customer_tally`, `customer_items`, `customer_gifts`: the cashier's view of each
  customer = HQ-confirmed tally (kept as JSON in `customers.confirmed_tally`) ⊕ the tally
  of local events after `customers.confirmed_through`.
- `customer_lots`: the view of each customer's points as dated lots (schema/lots.py) =
  HQ-confirmed lots with the local events after `confirmed_through` applied in order.
- `master`: categories, promotion categories, actions, gifts, greeting settings,
  announcements and the programme's settings as HQ publishes them.
- `desk_accounts`: the staff accounts HQ lets sign in at the reception desk (hashes only).
- `sales`, `sale_lines`, `payments`, `ledger`, `redemptions`, `visits`, `gift_stock`:
  local projections of local facts, written in the same transaction as the fact.
"""

from __future__ import annotations

from sqlite_utils import Database, Migrations

migrations = Migrations("loyalty-agent")


@migrations()
def m001_initial(db: Database) -> None:
    db.executescript(
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

        CREATE TABLE outbox (
            seq INTEGER PRIMARY KEY,
            event_id TEXT NOT NULL UNIQUE,
            type TEXT NOT NULL,
            customer_id TEXT,
            at TEXT NOT NULL,
            event TEXT NOT NULL,
            acked INTEGER NOT NULL DEFAULT 0,
            result TEXT
        );
        CREATE INDEX outbox_customer ON outbox (customer_id, seq);

        CREATE TABLE customers (
            customer_id TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            given_name TEXT, surname TEXT, name TEXT,
            business_domain TEXT, contact_person TEXT,
            date_of_birth TEXT, address TEXT, phone TEXT, fax TEXT,
            email TEXT, email_consent INTEGER,
            preferences TEXT, room TEXT, code TEXT,
            status TEXT NOT NULL DEFAULT 'approved',
            category TEXT NOT NULL,
            promo_category TEXT,
            approved_actions TEXT NOT NULL DEFAULT '[]',
            note TEXT, picture BLOB,
            pin_hash TEXT, pin_failures INTEGER NOT NULL DEFAULT 0,
            origin_outlet TEXT,
            created_at TEXT NOT NULL,
            search_name TEXT NOT NULL DEFAULT '',
            confirmed_through INTEGER NOT NULL DEFAULT 0,
            confirmed_tally TEXT NOT NULL DEFAULT '{}'
        );
        CREATE INDEX customers_search ON customers (search_name);

        CREATE TABLE identifiers (
            kind TEXT NOT NULL,
            value TEXT NOT NULL,
            customer_id TEXT NOT NULL REFERENCES customers (customer_id),
            status TEXT NOT NULL DEFAULT 'active',
            PRIMARY KEY (kind, value)
        ) WITHOUT ROWID;
        CREATE INDEX identifiers_customer ON identifiers (customer_id);

        CREATE TABLE customer_tally (
            customer_id TEXT PRIMARY KEY,
            purchases_total INTEGER NOT NULL DEFAULT 0,
            purchases_count INTEGER NOT NULL DEFAULT 0,
            items_count INTEGER NOT NULL DEFAULT 0,
            points_earned INTEGER NOT NULL DEFAULT 0,
            points_used INTEGER NOT NULL DEFAULT 0,
            discount_total INTEGER NOT NULL DEFAULT 0,
            paid_cash INTEGER NOT NULL DEFAULT 0,
            paid_card INTEGER NOT NULL DEFAULT 0,
            paid_credit INTEGER NOT NULL DEFAULT 0,
            credit_repaid INTEGER NOT NULL DEFAULT 0,
            gifts_count INTEGER NOT NULL DEFAULT 0,
            last_purchase_at TEXT NOT NULL DEFAULT '',
            best_purchase_total INTEGER NOT NULL DEFAULT 0,
            best_purchase_id TEXT NOT NULL DEFAULT ''
        ) WITHOUT ROWID;
        CREATE TABLE customer_items (
            customer_id TEXT NOT NULL,
            sku TEXT NOT NULL,
            name TEXT NOT NULL,
            qty INTEGER NOT NULL,
            max_unit_price INTEGER NOT NULL,
            PRIMARY KEY (customer_id, sku)
        ) WITHOUT ROWID;
        CREATE TABLE customer_gifts (
            customer_id TEXT NOT NULL,
            sku TEXT NOT NULL,
            qty INTEGER NOT NULL,
            PRIMARY KEY (customer_id, sku)
        ) WITHOUT ROWID;

        CREATE TABLE master (
            kind TEXT NOT NULL,
            key TEXT NOT NULL,
            data TEXT NOT NULL,
            PRIMARY KEY (kind, key)
        ) WITHOUT ROWID;

        CREATE TABLE gift_stock (gift_sku TEXT PRIMARY KEY, qty INTEGER NOT NULL);

        CREATE TABLE sales (
            sale_id TEXT PRIMARY KEY,
            idempotency_key TEXT UNIQUE,
            request_hash TEXT NOT NULL,
            seq INTEGER NOT NULL,
            customer_id TEXT NOT NULL,
            till_id TEXT,
            at TEXT NOT NULL,
            total_gross INTEGER NOT NULL,
            total_discount INTEGER NOT NULL,
            total_net INTEGER NOT NULL,
            points_earned INTEGER NOT NULL,
            response TEXT NOT NULL
        );
        CREATE INDEX sales_at ON sales (at);
        CREATE INDEX sales_customer ON sales (customer_id, at);
        CREATE TABLE sale_lines (
            sale_id TEXT NOT NULL,
            line_no INTEGER NOT NULL,
            sku TEXT NOT NULL, name TEXT NOT NULL, division TEXT,
            qty INTEGER NOT NULL, unit_price INTEGER NOT NULL,
            gross INTEGER NOT NULL, discount INTEGER NOT NULL, net INTEGER NOT NULL,
            actions TEXT NOT NULL DEFAULT '[]',
            PRIMARY KEY (sale_id, line_no)
        ) WITHOUT ROWID;
        CREATE TABLE payments (
            sale_id TEXT NOT NULL, mode TEXT NOT NULL, amount INTEGER NOT NULL
        );
        CREATE INDEX payments_sale ON payments (sale_id);
        CREATE TABLE ledger (
            entry_id INTEGER PRIMARY KEY,
            seq INTEGER NOT NULL,
            customer_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            points INTEGER NOT NULL DEFAULT 0,
            amount INTEGER NOT NULL DEFAULT 0,
            at TEXT NOT NULL
        );
        CREATE INDEX ledger_customer ON ledger (customer_id, seq);

        CREATE TABLE redemptions (
            redemption_id TEXT PRIMARY KEY,
            idempotency_key TEXT UNIQUE,
            seq INTEGER NOT NULL,
            customer_id TEXT NOT NULL,
            gift_sku TEXT NOT NULL, gift_name TEXT NOT NULL,
            qty INTEGER NOT NULL, points_spent INTEGER NOT NULL,
            till_id TEXT, at TEXT NOT NULL,
            response TEXT NOT NULL
        );
        CREATE TABLE visits (
            seq INTEGER PRIMARY KEY, customer_id TEXT NOT NULL,
            till_id TEXT, via TEXT NOT NULL, at TEXT NOT NULL
        );
        """
    )


@migrations()
def m002_invoices(db: Database) -> None:
    """Consolidated invoices replicated from HQ so a till can take their payment, the
    per-customer credit block HQ sets for customers past their payment term, and the
    fingerprint of a redemption request (an Idempotency-Key reused for another gift is a
    conflict, not a silent replay)."""
    db.executescript(
        """
        ALTER TABLE customers ADD COLUMN credit_blocked INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE redemptions ADD COLUMN request_hash TEXT;
        CREATE TABLE invoices (
            invoice_id TEXT PRIMARY KEY,
            number TEXT NOT NULL UNIQUE,
            customer_id TEXT NOT NULL,
            period_from TEXT NOT NULL,
            period_to TEXT NOT NULL,
            issued_on TEXT NOT NULL,
            due_on TEXT NOT NULL,
            amount INTEGER NOT NULL,
            paid_amount INTEGER NOT NULL DEFAULT 0,
            status TEXT NOT NULL
        );
        CREATE INDEX invoices_customer ON invoices (customer_id, status);
        """
    )


@migrations()
def m003_desk_accounts(db: Database) -> None:
    """The staff accounts that may sign in at this outlet's reception desk, replicated from
    HQ (agent/deskstaff.py): the username, role, password hash (never a password) and
    HQ's session generation of the account."""
    db.executescript(
        """
        CREATE TABLE desk_accounts (
            username TEXT PRIMARY KEY,
            role TEXT NOT NULL,
            password_hash TEXT NOT NULL,
            session_gen INTEGER NOT NULL
        ) WITHOUT ROWID;
        """
    )


@migrations()
def m004_greetings(db: Database) -> None:
    """Greetings and announcements (docs/greetings.md). `customers.language`: the
    customer's language (a profile field). `customers.first_visit_at`: when HQ first saw
    the customer visit (HQ publishes it); NULL with no visit here either is a first visit,
    which the till welcomes. Every customer already here counts as having visited (their
    created time), so the upgrade welcomes nobody twice. The indexes find, per customer, the
    announcements for them and those for everybody without reading all of them, and
    whether the customer visited here before."""
    db.executescript(
        """
        ALTER TABLE customers ADD COLUMN language TEXT;
        ALTER TABLE customers ADD COLUMN first_visit_at TEXT;
        UPDATE customers SET first_visit_at = created_at;
        CREATE INDEX master_announcement_audience
            ON master (json_extract(data, '$.customer_id')) WHERE kind = 'announcement';
        CREATE INDEX visits_customer ON visits (customer_id);
        """
    )


@migrations()
def m005_stock_transfers(db: Database) -> None:
    """HQ's stock transfer orders this outlet has applied to its gift stock, by the order's
    id (agent/giftstock.py `apply_transfer`): an order pulled again (a pull from scratch
    after HQ was restored, a retried page) moves nothing a second time."""
    db.executescript(
        """
        CREATE TABLE stock_transfers (
            transfer_id TEXT PRIMARY KEY,
            gift_sku TEXT NOT NULL,
            qty INTEGER NOT NULL,
            applied_at TEXT NOT NULL
        ) WITHOUT ROWID;
        """
    )


@migrations()
def m006_customer_merges(db: Database) -> None:
    """`customers.merged_into` as HQ publishes it (docs/backoffice.md, "Merging two
    profiles"): a merged profile's cards belong to the survivor it names, and the facts
    this outlet made about it that HQ has not folded in yet count for the survivor
    (agent/replication.py). The partial index lists the merged profiles at each pull
    from the index alone, without reading a row."""
    db.executescript(
        """
        ALTER TABLE customers ADD COLUMN merged_into TEXT;
        CREATE INDEX customers_merged ON customers (customer_id, merged_into)
            WHERE merged_into IS NOT NULL;
        """
    )


@migrations()
def m007_point_lots(db: Database) -> None:
    """Points as dated lots (schema/lots.py): the view of each customer's lots, and the
    expiry figure of the tally (the balance is earned - used - expired). Points held before
    become one lot, `opening` (schema/lotstore.py), until HQ's lots replace it."""
    db.executescript(
        """
        ALTER TABLE customer_tally ADD COLUMN points_expired INTEGER NOT NULL DEFAULT 0;
        CREATE TABLE customer_lots (
            customer_id TEXT NOT NULL,
            lot_id TEXT NOT NULL,
            earned_on TEXT NOT NULL,
            points INTEGER NOT NULL,
            expires_on TEXT,
            spendable_on TEXT,
            PRIMARY KEY (customer_id, lot_id)
        ) WITHOUT ROWID;
        INSERT INTO customer_lots (customer_id, lot_id, earned_on, points)
            SELECT customer_id, CASE WHEN points_earned - points_used > 0 THEN 'opening'
                                     ELSE 'deficit' END,
                   CASE WHEN points_earned - points_used > 0 THEN '1970-01-01'
                        ELSE '0001-01-01' END,
                   points_earned - points_used
            FROM customer_tally WHERE points_earned != points_used;
        """
    )


@migrations()
def m008_returns(db: Database) -> None:
    """The way back at the till (docs/programme.md): `returns` (one row per return or void,
    with its Idempotency-Key, its fact's body in `fact`, and the answer given), its
    `return_lines`, and `gift_returns` at the desk. A return of another outlet's sale
    (`home` = 0) names a sale this outlet has no row for; those rows are what the card's
    `floor_returns` counts, over the return window (`returns_abroad`)."""
    db.executescript(
        """
        CREATE TABLE returns (
            return_id TEXT PRIMARY KEY,
            idempotency_key TEXT UNIQUE,
            request_hash TEXT NOT NULL,
            seq INTEGER NOT NULL,
            sale_id TEXT NOT NULL,
            customer_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            till_id TEXT,
            reason TEXT NOT NULL DEFAULT '',
            receipt TEXT,
            home INTEGER NOT NULL,
            at TEXT NOT NULL,
            gross INTEGER NOT NULL,
            discount INTEGER NOT NULL,
            value INTEGER NOT NULL,
            refunded INTEGER NOT NULL,
            refund_cash INTEGER NOT NULL DEFAULT 0,
            refund_card INTEGER NOT NULL DEFAULT 0,
            refund_credit INTEGER NOT NULL DEFAULT 0,
            withheld INTEGER NOT NULL DEFAULT 0,
            points_reversed INTEGER NOT NULL,
            points_withheld INTEGER NOT NULL DEFAULT 0,
            closes_sale INTEGER NOT NULL,
            approved_by TEXT,
            fact TEXT NOT NULL,
            response TEXT NOT NULL
        );
        CREATE INDEX returns_sale ON returns (sale_id);
        CREATE INDEX returns_at ON returns (at);
        CREATE INDEX returns_abroad ON returns (customer_id, at) WHERE home = 0;
        CREATE TABLE return_lines (
            return_id TEXT NOT NULL,
            line_no INTEGER NOT NULL,
            sku TEXT NOT NULL, name TEXT NOT NULL,
            qty INTEGER NOT NULL, unit_price INTEGER NOT NULL,
            gross INTEGER NOT NULL, discount INTEGER NOT NULL, net INTEGER NOT NULL,
            PRIMARY KEY (return_id, line_no)
        ) WITHOUT ROWID;
        CREATE TABLE gift_returns (
            gift_return_id TEXT PRIMARY KEY,
            idempotency_key TEXT UNIQUE,
            request_hash TEXT NOT NULL,
            seq INTEGER NOT NULL,
            redemption_id TEXT NOT NULL,
            customer_id TEXT NOT NULL,
            gift_sku TEXT NOT NULL, gift_name TEXT NOT NULL,
            qty INTEGER NOT NULL, points_returned INTEGER NOT NULL,
            till_id TEXT, reason TEXT NOT NULL DEFAULT '',
            at TEXT NOT NULL,
            response TEXT NOT NULL
        );
        CREATE INDEX gift_returns_redemption ON gift_returns (redemption_id);
        CREATE INDEX gift_returns_at ON gift_returns (at);
        """
    )
