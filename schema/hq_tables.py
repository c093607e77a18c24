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
- `hq_settings`, `mail_outbox`, `notices`, `statement_entries`: HQ's own settings, the mail
  it is to send, the notices it decided, the bank statement entries it imported (m007).
- `newsletters`: the messages head office sent to a segment of customers (m010).
- `customer_lots`, `lot_spends`: each customer's points as dated lots (m012).
- `returns`, `return_lines`, `gift_returns`: the way back (m012), beside `sales` and
  `redemptions`; `invoice_credits`: the return credits each invoice deducts (m013).
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
def m007_mail_notices_statements(db: Database) -> None:
    """Reaching the customer (docs/invoices.md, docs/statements.md).

    `hq_settings`: HQ's own settings (payee account, SMTP server, public address), never
    replicated (hq/settings.py). `mail_outbox`: every message HQ is to send, rendered whole
    when queued (`message`, dropped once sent) with its stable `message_id`; `status`
    queued -> sending -> sent | failed, `attempts`, `next_attempt_at` (back-off),
    `claimed_by` (the worker run that marked it sending). `notices`: one row per customer,
    kind and what it is about (`about`: the invoice's number, the lost card) - the unique
    key that makes a notice at most once - with its `outcome` (mailed, no_consent,
    no_address, before_notices) and, for an invoice that was not mailed, `posted_at`.
    `statement_entries`: every bank statement entry imported, by its `identity` (a second
    import of it changes nothing), with what matching made of it and, for a suggestion, the
    clerk's confirmation. What existed before this migration (invoices, overdue invoices,
    lost cards) is marked `before_notices`: the upgrade mails nobody about the past."""
    db.executescript(
        """
        CREATE TABLE hq_settings (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;

        CREATE TABLE mail_outbox (
            mail_id INTEGER PRIMARY KEY,
            message_id TEXT NOT NULL UNIQUE,
            customer_id TEXT,
            kind TEXT NOT NULL,
            about TEXT NOT NULL,
            recipient TEXT NOT NULL,
            subject TEXT NOT NULL,
            message BLOB,
            size INTEGER NOT NULL,
            status TEXT NOT NULL DEFAULT 'queued',
            attempts INTEGER NOT NULL DEFAULT 0,
            queued_at TEXT NOT NULL,
            next_attempt_at TEXT NOT NULL,
            claimed_by TEXT,
            sending_since TEXT,
            sent_at TEXT,
            last_error TEXT
        );
        CREATE INDEX mail_outbox_due ON mail_outbox (status, next_attempt_at);
        CREATE INDEX mail_outbox_customer ON mail_outbox (customer_id, mail_id);

        CREATE TABLE notices (
            customer_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            about TEXT NOT NULL,
            decided_at TEXT NOT NULL,
            outcome TEXT NOT NULL,
            mail_id INTEGER,
            posted_at TEXT,
            PRIMARY KEY (customer_id, kind, about)
        ) WITHOUT ROWID;
        CREATE INDEX notices_about ON notices (kind, about);

        INSERT INTO notices (customer_id, kind, about, decided_at, outcome)
            SELECT customer_id, 'invoice_issued', number,
                   strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), 'before_notices' FROM invoices;
        INSERT INTO notices (customer_id, kind, about, decided_at, outcome)
            SELECT customer_id, 'invoice_overdue', number,
                   strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), 'before_notices' FROM invoices
            WHERE status IN ('overdue', 'past_term');
        INSERT OR IGNORE INTO notices (customer_id, kind, about, decided_at, outcome)
            SELECT customer_id, 'card_lost', value,
                   strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), 'before_notices' FROM identifiers
            WHERE kind = 'card' AND status = 'lost';

        CREATE TABLE statement_entries (
            entry_id INTEGER PRIMARY KEY,
            identity TEXT NOT NULL UNIQUE,
            imported_at TEXT NOT NULL,
            statement_id TEXT NOT NULL,
            account TEXT NOT NULL,
            position TEXT NOT NULL,
            statement_reference TEXT NOT NULL,
            booking_date TEXT,
            amount INTEGER NOT NULL,
            currency TEXT NOT NULL,
            direction TEXT NOT NULL,
            debtor_name TEXT,
            remittance TEXT NOT NULL DEFAULT '',
            creditor_reference TEXT,
            status TEXT NOT NULL,
            via TEXT,
            invoices TEXT NOT NULL DEFAULT '[]',
            allocations TEXT NOT NULL DEFAULT '[]',
            part_payment INTEGER NOT NULL DEFAULT 0,
            reason TEXT NOT NULL DEFAULT '',
            confirmed_at TEXT,
            confirmed_invoice TEXT
        );
        CREATE INDEX statement_entries_status ON statement_entries (status, entry_id);
        """
    )


@migrations()
def m008_staff_roles_audit(db: Database) -> None:
    """Staff roles and the audit trail (docs/backoffice.md, "Roles" and "The audit trail").

    `staff.role` (schema/roles.py): every account that existed before is an administrator,
    so nobody who could do everything yesterday is locked out today; `staff.last_login_at`
    for the staff page. `audit`: one row per change staff made (who, when by HQ's clock,
    what, the subject and the customer concerned, the state before and after as JSON, why,
    and the HQ fact it recorded if any), numbered by HQ's own sequence `audit_id`; rows are
    never changed nor deleted (the triggers refuse it)."""
    db.executescript(
        """
        ALTER TABLE staff ADD COLUMN role TEXT NOT NULL DEFAULT 'administrator';
        ALTER TABLE staff ADD COLUMN last_login_at TEXT;

        CREATE TABLE audit (
            audit_id INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            staff TEXT NOT NULL,
            role TEXT NOT NULL,
            action TEXT NOT NULL,
            subject_kind TEXT NOT NULL,
            subject TEXT NOT NULL,
            customer_id TEXT,
            before TEXT,
            after TEXT,
            reason TEXT NOT NULL DEFAULT '',
            event_id TEXT
        );
        CREATE INDEX audit_customer ON audit (customer_id, audit_id);
        CREATE INDEX audit_staff ON audit (staff, audit_id);
        CREATE INDEX audit_subject ON audit (subject_kind, subject, audit_id);
        CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
            BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
        CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
            BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
        """
    )


@migrations()
def m009_greetings(db: Database) -> None:
    """Greetings at the till (docs/greetings.md). `customers.language`: the customer's
    language (a profile field). `customers.first_visit_at`: the booking time of the
    customer's first visit fact, published to the outlets (their tills welcome a customer
    on the first visit); every customer already here counts as having visited (their
    created time), so the upgrade welcomes nobody."""
    db.executescript(
        """
        ALTER TABLE customers ADD COLUMN language TEXT;
        ALTER TABLE customers ADD COLUMN first_visit_at TEXT;
        UPDATE customers SET first_visit_at = created_at;
        """
    )


@migrations()
def m010_newsletters(db: Database) -> None:
    """Newsletters (docs/invoices.md, "Newsletters"): each message head office sent to a
    segment (its text and segment as given); its recipients are `notices` of kind
    `newsletter` about its id, so one newsletter reaches one customer at most once."""
    db.executescript(
        """
        CREATE TABLE newsletters (
            newsletter_id TEXT PRIMARY KEY,
            subject TEXT NOT NULL,
            body TEXT NOT NULL,
            segment TEXT NOT NULL,
            created_at TEXT NOT NULL,
            recipients INTEGER NOT NULL
        ) WITHOUT ROWID;
        """
    )


@migrations()
def m011_customer_merges(db: Database) -> None:
    """Merging two profiles of one person (docs/backoffice.md, "Merging two profiles"):
    `customers.merged_into`, the profile that now holds a merged one's cards, points and
    history (NULL for every profile not merged). Derived from the `customers.merged` facts
    like the rest of the row; published to the outlets. Two partial indexes, holding the
    merged profiles only: one finds those merged into a customer (its page lists them),
    the other tells ingest which of a batch's customers are merged without reading their
    rows (a picture makes a row long, and the new column is its last)."""
    db.executescript(
        """
        ALTER TABLE customers ADD COLUMN merged_into TEXT;
        CREATE INDEX customers_merged_into ON customers (merged_into)
            WHERE merged_into IS NOT NULL;
        CREATE INDEX customers_merged ON customers (customer_id, merged_into)
            WHERE merged_into IS NOT NULL;
        """
    )


@migrations()
def m012_point_lots(db: Database) -> None:
    """Points as dated lots (schema/lots.py, docs/programme.md "Points as lots") and the
    expiry figure of the tally.

    `customer_lots`: each customer's lots as HQ's fold of the facts leaves them (a lot per
    earning, named by the fact; `deficit` a balance below zero), tidy (no empty lot).
    `lot_spends`: per redemption, what it took from which lot and has not been given back
    (a gift given back refills them). `customer_tally.points_expired`: points expired so
    far (the balance is earned - used - expired).
    Points held before lots existed become one lot, `opening` (schema/lotstore.py), dated
    1970-01-01: exact for the balance; a rule turned on later counts it from its `since`."""
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
        CREATE TABLE lot_spends (
            redemption_id TEXT NOT NULL,
            n INTEGER NOT NULL,
            customer_id TEXT NOT NULL,
            lot_id TEXT NOT NULL,
            earned_on TEXT NOT NULL,
            points INTEGER NOT NULL,
            expires_on TEXT,
            spendable_on TEXT,
            PRIMARY KEY (redemption_id, n)
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
def m013_returns(db: Database) -> None:
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


@migrations()
def m014_invoice_credits(db: Database) -> None:
    """Consolidated invoices net of returns (docs/invoices.md, "Returns on the invoice"):
    `invoice_credits`, per invoice the return credits it deducts (`amount` in minor units,
    positive, shown negative), each naming its return and the sale it gave back from. A
    return's credit refund may be spread over several invoices when one could not absorb it
    all (an invoice never goes below zero); what is left of it waits for the next one. The
    partial index finds the returns that refunded internal credit."""
    db.executescript(
        """
        CREATE TABLE invoice_credits (
            invoice_id TEXT NOT NULL,
            return_id TEXT NOT NULL,
            sale_id TEXT NOT NULL,
            outlet_id TEXT NOT NULL,
            at TEXT NOT NULL,
            amount INTEGER NOT NULL,
            PRIMARY KEY (invoice_id, return_id)
        ) WITHOUT ROWID;
        CREATE INDEX invoice_credits_return ON invoice_credits (return_id);
        CREATE INDEX returns_credit_refunds ON returns (customer_id, at) WHERE refund_credit > 0;
        """
    )


@migrations()
def m015_adjustment_keys(db: Database) -> None:
    """Corrections are idempotent like sales (review 11, finding 6): `adjustment_keys` maps
    an admin's Idempotency-Key to the request's hash and the answer given, written in the
    correction's own transaction; the same key again answers the same correction, another
    body with it is `idempotency_conflict`."""
    db.executescript(
        """
        CREATE TABLE adjustment_keys (
            idempotency_key TEXT PRIMARY KEY,
            request_hash TEXT NOT NULL,
            response TEXT NOT NULL,
            at TEXT NOT NULL
        ) WITHOUT ROWID;
        """
    )


@migrations()
def m016_lot_expiries(db: Database) -> None:
    """An expiry per customer, lot and day is recorded once (review 11, finding 7):
    `lot_expiries` is claimed in the expiry's own transaction (hq/expiry.py `claim`), so two
    HQ processes computing the same expiry on PostgreSQL record one `points.expired`."""
    db.executescript(
        """
        CREATE TABLE lot_expiries (
            customer_id TEXT NOT NULL,
            lot_id TEXT NOT NULL,
            on_day TEXT NOT NULL,
            PRIMARY KEY (customer_id, lot_id, on_day)
        ) WITHOUT ROWID;
        """
    )
