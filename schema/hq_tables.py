"""Headquarters' SQLite tables, as forward-only named migrations.

- `events`: every fact from every outlet, once (dedupe by `event_id`), in HQ's own order
  (`hq_seq`): the chain-wide ledger. Outlet timestamps are kept as sent (`at`) but never
  used to order; periods use `booked_at` (schema/timing.py), which the projections
  (`sales.at`, `redemptions.at`, tallies) hold.
- `outlets`: registered outlets, their hashed tokens, card ranges and `last_seq` (the
  highest contiguous local sequence applied, updated in the same transaction).
- `customers`, `identifiers`, `customer_tally`/`_items`/`_gifts`, `master`: the
  authoritative state, derived from events (tallies) or owned by HQ (master data, bans).
- `changes`: the compacted change log outlets pull: one row per entity, its `seq` bumped
  on every change, so a bootstrap reads the chain's current size, not its history.
- `flags`: facts applied but needing review (overspent points, unknown customers, returns
  that together give back more than their sale...).
- `returns`, `return_lines`, `gift_returns`: the way back (m011), beside `sales` and
  `redemptions`.
"""

from __future__ import annotations

from sqlite_utils import Database, Migrations

migrations = Migrations("loyalty-hq")


@migrations()
def m001_initial(db: Database) -> None:
    db.executescript(
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE admin_tokens (
            token_hash TEXT PRIMARY KEY, created_at TEXT NOT NULL, label TEXT
        );
        CREATE TABLE outlets (
            outlet_id TEXT PRIMARY KEY,
            token_hash TEXT NOT NULL UNIQUE,
            card_range INTEGER NOT NULL UNIQUE,
            created_at TEXT NOT NULL,
            last_seq INTEGER NOT NULL DEFAULT 0,
            last_push_at TEXT,
            last_pull_at TEXT,
            link TEXT
        );
        CREATE TABLE events (
            hq_seq INTEGER PRIMARY KEY,
            event_id TEXT NOT NULL UNIQUE,
            outlet_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            type TEXT NOT NULL,
            version INTEGER NOT NULL,
            customer_id TEXT,
            at TEXT NOT NULL,
            received_at TEXT NOT NULL,
            event TEXT NOT NULL,
            result TEXT NOT NULL,
            reason TEXT,
            UNIQUE (outlet_id, seq)
        );
        CREATE INDEX events_customer ON events (customer_id, hq_seq);
        CREATE INDEX events_type ON events (type, at);

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
            pin_hash TEXT,
            credit_blocked INTEGER NOT NULL DEFAULT 0,
            origin_outlet TEXT,
            created_at TEXT NOT NULL,
            search_name TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX customers_search ON customers (search_name);
        CREATE TABLE identifiers (
            kind TEXT NOT NULL,
            value TEXT NOT NULL,
            customer_id TEXT NOT NULL,
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
            customer_id TEXT NOT NULL, sku TEXT NOT NULL, name TEXT NOT NULL,
            qty INTEGER NOT NULL, max_unit_price INTEGER NOT NULL,
            PRIMARY KEY (customer_id, sku)
        ) WITHOUT ROWID;
        CREATE TABLE customer_gifts (
            customer_id TEXT NOT NULL, sku TEXT NOT NULL, qty INTEGER NOT NULL,
            PRIMARY KEY (customer_id, sku)
        ) WITHOUT ROWID;

        CREATE TABLE master (
            kind TEXT NOT NULL, key TEXT NOT NULL, data TEXT NOT NULL,
            PRIMARY KEY (kind, key)
        ) WITHOUT ROWID;
        CREATE TABLE gift_stock (
            outlet_id TEXT NOT NULL, gift_sku TEXT NOT NULL, qty INTEGER NOT NULL,
            PRIMARY KEY (outlet_id, gift_sku)
        ) WITHOUT ROWID;

        CREATE TABLE changes (
            kind TEXT NOT NULL,
            key TEXT NOT NULL,
            seq INTEGER NOT NULL UNIQUE,
            urgent INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (kind, key)
        ) WITHOUT ROWID;

        CREATE TABLE flags (
            flag_id INTEGER PRIMARY KEY,
            event_id TEXT,
            customer_id TEXT,
            outlet_id TEXT,
            reason TEXT NOT NULL,
            detail TEXT,
            at TEXT NOT NULL,
            resolved_at TEXT
        );
        CREATE INDEX flags_open ON flags (resolved_at, flag_id);

        CREATE TABLE sales (
            sale_id TEXT PRIMARY KEY,
            hq_seq INTEGER NOT NULL,
            outlet_id TEXT NOT NULL,
            customer_id TEXT NOT NULL,
            till_id TEXT,
            at TEXT NOT NULL,
            total_gross INTEGER NOT NULL,
            total_discount INTEGER NOT NULL,
            total_net INTEGER NOT NULL,
            points_earned INTEGER NOT NULL,
            paid_credit INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX sales_at ON sales (at);
        CREATE INDEX sales_customer ON sales (customer_id, at);
        CREATE TABLE sale_lines (
            sale_id TEXT NOT NULL, line_no INTEGER NOT NULL,
            sku TEXT NOT NULL, name TEXT NOT NULL, division TEXT,
            qty INTEGER NOT NULL, unit_price INTEGER NOT NULL,
            gross INTEGER NOT NULL, discount INTEGER NOT NULL, net INTEGER NOT NULL,
            PRIMARY KEY (sale_id, line_no)
        ) WITHOUT ROWID;
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
            status TEXT NOT NULL DEFAULT 'unpaid',
            paid_on TEXT,
            paid_via TEXT,
            bank_reference TEXT
        );
        CREATE INDEX invoices_status ON invoices (status, due_on);
        CREATE INDEX invoices_customer ON invoices (customer_id, issued_on);
        CREATE TABLE invoice_items (
            invoice_id TEXT NOT NULL,
            sale_id TEXT NOT NULL UNIQUE,
            outlet_id TEXT NOT NULL,
            at TEXT NOT NULL,
            amount INTEGER NOT NULL,
            PRIMARY KEY (invoice_id, sale_id)
        ) WITHOUT ROWID;
        CREATE TABLE redemptions (
            redemption_id TEXT PRIMARY KEY,
            hq_seq INTEGER NOT NULL,
            outlet_id TEXT NOT NULL,
            customer_id TEXT NOT NULL,
            gift_sku TEXT NOT NULL, gift_name TEXT NOT NULL,
            qty INTEGER NOT NULL, points_spent INTEGER NOT NULL,
            at TEXT NOT NULL
        );
        """
    )


@migrations()
def m002_staff(db: Database) -> None:
    """Head-office staff accounts for the web back office (hq/office/): a username and a
    scrypt hash of the password, never the password; `session_gen` is bumped on logout or a
    password change so every session cookie issued before stops working."""
    db.executescript(
        """
        CREATE TABLE staff (
            username TEXT PRIMARY KEY,
            password_hash TEXT NOT NULL,
            created_at TEXT NOT NULL,
            session_gen INTEGER NOT NULL DEFAULT 0,
            disabled INTEGER NOT NULL DEFAULT 0
        ) WITHOUT ROWID;
        """
    )


@migrations()
def m003_report_indexes(db: Database) -> None:
    """Indexes for the reports (schema/reports.py, docs/reports.md): per-customer figures
    over a period read one covering index in customer order instead of every sales row, and
    a customer's category is found without reading the customer's row."""
    db.executescript(
        """
        CREATE INDEX IF NOT EXISTS sales_customer_totals
            ON sales (customer_id, at, total_gross, total_discount, total_net);
        CREATE INDEX IF NOT EXISTS customers_category ON customers (customer_id, category);
        """
    )


@migrations()
def m004_drop_redundant_sales_index(db: Database) -> None:
    """`sales_customer (customer_id, at)` is a prefix of m003's `sales_customer_totals`:
    one random index write per ingested sale for nothing."""
    db.executescript("DROP INDEX IF EXISTS sales_customer;")


@migrations()
def m005_urgent_changes_index(db: Database) -> None:
    """Every pull page asks for the urgent changes (bans, blocked cards) after the cursor;
    without this index that scanned the rest of the change log on every page, so a
    bootstrap cost grew with the square of the chain's size."""
    db.executescript("CREATE INDEX IF NOT EXISTS changes_urgent ON changes (seq) WHERE urgent = 1;")


@migrations()
def m006_outlet_clocks(db: Database) -> None:
    """Outlet clocks (docs/sync.md, "Outlet clocks"). `events.booked_at`: the time a fact
    is placed in periods by (the outlet's stamp when plausible, else HQ's receive time;
    `at` keeps the stamp as sent; NULL on facts ingested before: their `at` was used).
    `outlets.clock_offset_s` / `clock_measured_at`: the outlet's clock minus HQ's, last
    measured at a hello or push; `clock_flag_id` / `clock_redated`: the one flag open
    about this outlet's time and how many facts it has booked at receive time since."""
    db.executescript(
        """
        ALTER TABLE events ADD COLUMN booked_at TEXT;
        ALTER TABLE outlets ADD COLUMN clock_offset_s REAL;
        ALTER TABLE outlets ADD COLUMN clock_measured_at TEXT;
        ALTER TABLE outlets ADD COLUMN clock_flag_id INTEGER;
        ALTER TABLE outlets ADD COLUMN clock_redated INTEGER NOT NULL DEFAULT 0;
        """
    )


@migrations()
def m011_returns(db: Database) -> None:
    """The way back at HQ (docs/programme.md): `returns` (one row per return or void, from
    any outlet, with the ledger row it came from: `hq_seq`), `return_lines`, and
    `gift_returns`. `sale_known` = 0 marks a return that reached HQ before its sale (made
    at another outlet that has not pushed yet): when the sale arrives its returns are
    audited and its customer restated (`returns_waiting`)."""
    db.executescript(
        """
        CREATE TABLE returns (
            return_id TEXT PRIMARY KEY,
            hq_seq INTEGER NOT NULL,
            outlet_id TEXT NOT NULL,
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
            sale_known INTEGER NOT NULL
        );
        CREATE INDEX returns_sale ON returns (sale_id);
        CREATE INDEX returns_customer ON returns (customer_id);
        CREATE INDEX returns_at ON returns (at);
        CREATE INDEX returns_waiting ON returns (sale_id) WHERE sale_known = 0;
        CREATE TABLE return_lines (
            return_id TEXT NOT NULL, line_no INTEGER NOT NULL,
            sku TEXT NOT NULL, name TEXT NOT NULL,
            qty INTEGER NOT NULL, unit_price INTEGER NOT NULL,
            gross INTEGER NOT NULL, discount INTEGER NOT NULL, net INTEGER NOT NULL,
            PRIMARY KEY (return_id, line_no)
        ) WITHOUT ROWID;
        CREATE TABLE gift_returns (
            gift_return_id TEXT PRIMARY KEY,
            hq_seq INTEGER NOT NULL,
            outlet_id TEXT NOT NULL,
            redemption_id TEXT NOT NULL,
            customer_id TEXT NOT NULL,
            gift_sku TEXT NOT NULL, gift_name TEXT NOT NULL,
            qty INTEGER NOT NULL, points_returned INTEGER NOT NULL,
            till_id TEXT, reason TEXT NOT NULL DEFAULT '',
            at TEXT NOT NULL
        );
        CREATE INDEX gift_returns_at ON gift_returns (at);
        CREATE INDEX gift_returns_redemption ON gift_returns (redemption_id);
        """
    )
