"""`loyalty hq ...`: headquarters' commands, a thin layer over hq/.

Tokens are printed alone on the last line of stdout so scripts can take them with
`tail -n 1`. The default programme a new chain starts with is handed in by the caller
(`group(seed)`: loyalty/cli.py, the composition root, hands in the agent's), so HQ does not
depend on the agent's code. Refusals are raised, never printed here: the root's
`LoyaltyGroup` (given as `cls`) renders them as one `error [code]: message` line.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, cast

import click

from hq import store
from hq.chain import Chain, MasterSeed
from schema.dblock import DatabaseLock
from schema.roles import Role

if TYPE_CHECKING:
    from hq.store.postgres import PgStore

SeedProvider = Callable[[], MasterSeed]
# `progress(name, unit)`: long work's progress display, handed in by the composition root
ProgressFactory = Callable[[str, str], AbstractContextManager[Any]]



def group(seed: SeedProvider, cls: type[click.Group] = click.Group,
          progress: ProgressFactory | None = None) -> click.Group:
    @click.group(cls=cls)
    def hq() -> None:
        """Headquarters: the server and head-office operations."""

    def chain(db: str) -> Chain:
        made = Chain(db, seed=seed())
        # closed when the command ends: a PostgreSQL store holds a pool and a listener
        click.get_current_context().call_on_close(made.close)
        return made

    @hq.command()
    @click.option("--db", required=True,
                  help="HQ's SQLite file (created if new), or a postgresql:// URL.")
    @click.option("--host", default="127.0.0.1", show_default=True)
    @click.option("--port", default=8700, show_default=True, type=int)
    @click.option("--modem", "modems", multiple=True, metavar="PORT",
                  help="A modem line answering outlets' calls (repeat for a modem bank).")
    @click.option("--modem-init", default="ATZ;ATE0V1", show_default=True,
                  help="The modems' init commands, separated by ';'.")
    @click.option("--modem-guard", default=1.0, show_default=True, type=float,
                  help="Escape guard time in seconds (the modems' S12 / 50).")
    @click.option("--clock-tolerance", default=300.0, show_default=True,
                  type=click.FloatRange(min=0, max=86400), metavar="SECONDS",
                  help="How far an outlet's clock may be from HQ's before it is flagged and "
                       "its facts are booked at HQ's receive time (docs/sync.md).")
    @click.option("--snapshot-changes", default=50_000, show_default=True,
                  type=click.IntRange(min=0), metavar="N",
                  help="Keep a snapshot for new outlets: build one when the change log has "
                       "moved N changes past the last (0: never build; docs/sync.md).")
    def serve(db: str, host: str, port: int, modems: tuple[str, ...], modem_init: str,
              modem_guard: float, clock_tolerance: float, snapshot_changes: int) -> None:
        """Serve the sync and admin API (and answer modem calls with --modem)."""
        from hq import schedule
        from hq.api import create_app
        from hq.modembank import LineSettings, ModemBank
        from hq.snapshot import Snapshots
        from web import serving

        # Ingest allocates many short-lived objects: the default GC thresholds cost 15-20 %
        # of HQ's CPU per event (measured by bench/sync.py); collect less often.
        gc.set_threshold(20_000, 50, 50)
        # one HQ process per SQLite file (its lock file, for the process's life); several on
        # one PostgreSQL database (docs/sync.md, "Several HQ processes"): no lock file there
        lock: AbstractContextManager[Any] = (
            contextlib.nullcontext() if store.is_url(db) else
            DatabaseLock(db, "loyalty hq serve", f"{host}:{port}").held(
                "one HQ per database: stop that one first"))
        with lock:
            the_chain = chain(db)
            if store.is_url(db):
                # marked as served for the process's life, so `restore-epoch` waits for none
                # of the HQ processes (it refuses while one serves); the epoch read again, as
                # one may have been restored while this process was marking
                postgres(the_chain).serving(
                    f"loyalty hq serve pid {os.getpid()} at {host}:{port}")
                with the_chain.db.read() as conn:
                    the_chain.epoch = str(the_chain.meta(conn, "epoch"))
            the_chain.clock_tolerance_s = clock_tolerance
            snapshots = Snapshots(the_chain, every=snapshot_changes)
            scheduler = schedule.start(the_chain, snapshots)
            the_chain.db.start_checkpointer()
            init = tuple(c.strip() for c in modem_init.split(";") if c.strip())
            bank = ModemBank(the_chain, [LineSettings(m, init, modem_guard) for m in modems])
            bank.start()
            click.echo(f"HQ serving {store.shown(db)} on http://{host}:{port} "
                       f"(epoch {the_chain.epoch}); "
                       f"{len(modems)} modem line(s)", err=True)
            try:
                serving.run(create_app(the_chain, snapshots), host, port,
                            on_exit=the_chain.waiters.close)
            finally:
                bank.stop()
                scheduler.shutdown(wait=False)
                the_chain.close()

    @hq.command()
    @click.option("--from", "source", required=True, metavar="FILE",
                  type=click.Path(exists=True, dir_okay=False),
                  help="HQ's SQLite file (HQ stopped).")
    @click.option("--to", "target", required=True, metavar="URL",
                  help="An empty PostgreSQL database: postgresql://USER@HOST:PORT/DATABASE.")
    def migrate(source: str, target: str) -> None:
        """Move HQ from its SQLite file into an empty PostgreSQL database, verified (row
        counts, sums, the ledger fold); the file is left as it was (docs/operations.md)."""
        from hq.store import migrate as moving

        moved = moving.migrate(source, target, progress)
        width = max(len(name) for name in moved.tables)
        for name, rows in moved.tables.items():
            click.echo(f"{name:<{width}} {rows:>12,} rows")
        rate = moved.rows / moved.copy_s if moved.copy_s > 0 else 0.0
        click.echo(f"migrated {moved.rows:,} rows of {len(moved.tables)} tables in "
                   f"{moved.copy_s:.1f} s ({rate:,.0f} rows/s) into {store.shown(target)}; "
                   f"verified in {moved.verify_s:.1f} s: every table's rows and sums, the "
                   f"ledger fold of {moved.customers:,} customers ({moved.events:,} events)")

    @hq.command()
    @click.option("--db", required=True,
                  help="HQ's SQLite file, or its postgresql:// URL.")
    @click.option("--out", metavar="FILE",
                  help="Where to write it [HQ's snapshot directory, DB.snapshots, which "
                       "`loyalty hq serve` serves from].")
    def snapshot(db: str, out: str | None) -> None:
        """Write a snapshot of the chain: a ready outlet database for new outlets
        (`loyalty agent bootstrap --from FILE`); safe while HQ serves."""
        from pathlib import Path

        from hq import snapshot as snapshots
        from schema.errors import NotFound

        if not store.is_url(db) and not Path(db).is_file():
            raise NotFound(f"no HQ database {db}: give HQ's file (or its postgresql:// URL)")
        the_chain = chain(db)
        try:
            if out is None:
                offer = snapshots.Snapshots(the_chain).build_now()
                header, path = offer.header, str(offer.path)
            else:
                source = the_chain.db if store.is_url(db) else db
                header, path = snapshots.build(source, out), out
        finally:
            the_chain.close()
        click.echo(f"snapshot at cursor {header.cursor} of epoch {header.epoch}: "
                   f"{header.customers} customers, {header.file_bytes} bytes "
                   f"({header.compression}), sha256 {header.sha256}")
        click.echo(path)

    @hq.command("outlet-add")
    @click.option("--db", required=True)
    @click.option("--card-range", type=int, help="Card number range (default: the next free).")
    @click.argument("outlet_id")
    def outlet_add(db: str, outlet_id: str, card_range: int | None) -> None:
        """Register an outlet; prints its secret token on the last line."""
        from hq import credentials

        the_chain = chain(db)
        with the_chain.db.write() as conn:
            token, rng = credentials.add_outlet(conn, outlet_id, card_range)
        click.echo(f"outlet {outlet_id} registered, card range {rng}; its token:")
        click.echo(token)

    @hq.command("outlet-token")
    @click.option("--db", required=True)
    @click.argument("outlet_id")
    def outlet_token(db: str, outlet_id: str) -> None:
        """Replace an outlet's token (lost or leaked); prints the new one on the last line."""
        from hq import credentials

        the_chain = chain(db)
        with the_chain.db.write() as conn:
            token = credentials.rotate_outlet(conn, outlet_id)
        click.echo(f"outlet {outlet_id}: old token revoked; its new token:")
        click.echo(token)

    @hq.command("admin-token")
    @click.option("--db", required=True)
    @click.option("--label", default="", help="Who gets this token (kept beside its hash).")
    def admin_token(db: str, label: str) -> None:
        """Issue a new admin token; prints it on the last line (only its hash is kept)."""
        from hq import credentials

        the_chain = chain(db)
        with the_chain.db.write() as conn:
            token = credentials.add_admin(conn, label)
        click.echo("admin token (store it safely; HQ keeps only its hash):")
        click.echo(token)

    def set_status(db: str, customer: str, status: str, reason: str) -> None:
        from hq import admin
        from hq.audit import COMMAND_LINE

        the_chain = chain(db)
        customer_id = admin.resolve_customer(the_chain, customer)
        view = admin.set_status(the_chain, customer_id, status, reason, by=COMMAND_LINE)
        click.echo(f"customer {customer_id} is now {view['status']}; every outlet gets it "
                   "with its next pull")

    @hq.command()
    @click.option("--db", required=True)
    @click.option("--reason", default="", help="Why (kept with the fact in the ledger).")
    @click.argument("customer")
    def ban(db: str, customer: str, reason: str) -> None:
        """Ban a customer everywhere (CUSTOMER: a customer id or a club card number)."""
        set_status(db, customer, "banned", reason)

    @hq.command()
    @click.option("--db", required=True)
    @click.option("--reason", default="", help="Why (kept with the fact in the ledger).")
    @click.argument("customer")
    def unban(db: str, customer: str, reason: str) -> None:
        """Lift a ban everywhere (CUSTOMER: a customer id or a club card number)."""
        set_status(db, customer, "approved", reason)

    @hq.command()
    @click.option("--db", required=True)
    @click.argument("customer")
    def customer(db: str, customer: str) -> None:
        """HQ's authoritative view of a customer (a customer id or a club card number)."""
        from hq import admin

        the_chain = chain(db)
        customer_id = admin.resolve_customer(the_chain, customer)
        click.echo(json.dumps(admin.customer_view(the_chain, customer_id), indent=2))

    @hq.command()
    @click.option("--db", required=True)
    @click.option("--points", default="0", metavar="N",
                  help="Points to add; negative takes them away.")
    @click.option("--credit", default="0", metavar="AMOUNT",
                  help="Internal credit owed LESS by this much (e.g. 12.50); negative owes more.")
    @click.option("--reason", help="Why (required; kept with the fact in the ledger).")
    @click.argument("customer")
    def adjust(db: str, customer: str, points: str, credit: str, reason: str | None) -> None:
        """Correct a customer's points and/or internal credit (CUSTOMER: a customer id or a
        club card number): HQ's own fact, with its reason, that reaches every outlet."""
        import re

        from hq import admin
        from schema.errors import InvalidRequest, mask_card
        from schema.money import money, parse_money

        if not re.fullmatch(r"\s*-?\d{1,10}\s*", points):
            raise InvalidRequest(f"--points: {points[:20]!r} is not a whole number of points: "
                                 "give one such as 50, or -50 to take points away")
        amount = parse_money(credit, field="--credit", negative=True)
        if int(points) == 0 and amount == 0:
            raise InvalidRequest("--points/--credit: a correction changes points or credit: "
                                 "give --points N and/or --credit AMOUNT (not both 0)")
        if reason is None or not reason.strip():
            raise InvalidRequest("--reason: say why (it is kept with the correction in the "
                                 "ledger), e.g. --reason \"receipt 0042 scanned twice\"")
        the_chain = chain(db)
        customer_id = admin.resolve_customer(the_chain, customer)
        from hq.audit import COMMAND_LINE

        made = admin.adjust(the_chain, customer_id, int(points), amount, reason,
                            by=COMMAND_LINE)
        shown = mask_card(customer) if customer.strip().isdigit() else customer_id
        click.echo(f"customer {shown}: points {made['points']:+d}, credit {money(made['credit'])}"
                   f" ({made['reason']}); now {made['points_balance']} points, "
                   f"{money(made['credit_balance'])} owed on credit; every outlet gets it with "
                   "its next pull")
        click.echo(made["adjustment_id"])

    @hq.command("expire-points")
    @click.option("--db", required=True)
    @click.option("--today", metavar="YYYY-MM-DD", help="Expire as of this day [today, UTC].")
    def expire_points(db: str, today: str | None) -> None:
        """Expire the points past their last valid day now, as HQ does every night at
        00:30 UTC (and as POST /v1/admin/points/expire does)."""
        from datetime import UTC, date, datetime

        from hq import expiry
        from schema.errors import InvalidRequest

        try:
            day = date.fromisoformat(today) if today else datetime.now(UTC).date()
            if today is not None and len(today) != 10:
                raise ValueError(today)
        except ValueError:
            raise InvalidRequest(f"--today: {today!r} is not a date: give YYYY-MM-DD") from None
        ran = expiry.run(chain(db), day)
        click.echo(f"expired as of {ran['on']}: {ran['points']} points in {ran['lots']} lot(s) "
                   f"of {ran['customers']} customer(s)")

    @hq.command("close-invoices")
    @click.option("--db", required=True)
    @click.option("--period", metavar="YYYY-MM", help="The month to close [last month, UTC].")
    @click.option("--issued-on", metavar="YYYY-MM-DD",
                  help="The invoices' issue date; the payment term runs from it [today, UTC].")
    def close_invoices(db: str, period: str | None, issued_on: str | None) -> None:
        """Close an invoice period now, as HQ does on the 1st of each month (and as
        POST /v1/admin/invoices/close does): one invoice per customer with credit
        purchases in it, plus any earlier credit purchase that reached HQ late."""
        from datetime import UTC, date, datetime, timedelta

        from hq import invoices
        from hq.schedule import previous_month
        from schema.errors import InvalidRequest
        from schema.money import money

        today = datetime.now(UTC).date()
        if period is None:
            start, end = previous_month(today)
        else:
            try:
                year, month = (int(part) for part in period.split("-"))
                if len(period) != 7:
                    raise ValueError(period)
                start = invoices.business_day(date(year, month, 1), "period_from")
            except ValueError:
                raise InvalidRequest(f"--period: {period!r} is not a month: give YYYY-MM, "
                                     "e.g. 2026-10") from None
            end = (start + timedelta(days=32)).replace(day=1)
        try:
            issued = date.fromisoformat(issued_on) if issued_on else today
        except ValueError:
            raise InvalidRequest(f"--issued-on: {issued_on!r} is not a date: give YYYY-MM-DD")\
                from None
        made = invoices.close_period(chain(db), start, end, issued)
        for m in made:
            credits = f", {m['credits']} return credits" if m["credits"] else ""
            click.echo(f"{m['number']}  customer {m['customer_id']}  {money(m['amount'])}  "
                       f"due {m['due_on']}  ({m['items']} credit purchases{credits})")
        last = (end - timedelta(days=1)).isoformat()
        click.echo(f"closed {start.isoformat()}..{last}: {len(made)} invoice(s)" if made
                   else f"no new invoices for {start.isoformat()}..{last}")

    @hq.command()
    @click.option("--db", required=True)
    def outlets(db: str) -> None:
        """Registered outlets and their sync health."""
        from hq import admin

        rows: list[dict[str, Any]] = admin.outlets(chain(db))
        for r in rows:
            click.echo(f"{r['outlet_id']:<12} range {r['card_range']:<5} last_seq {r['last_seq']:<8} "
                       f"push {r['last_push_at'] or '-'}  pull {r['last_pull_at'] or '-'}")

    @hq.command()
    @click.option("--db", required=True)
    def flags(db: str) -> None:
        """Facts applied but flagged for review (e.g. points overspent offline)."""
        from hq import ingest

        for f in ingest.flags(chain(db)):
            click.echo(f"#{f['flag_id']} {f['at']} outlet {f['outlet_id']} customer "
                       f"{f['customer_id']}: {f['reason']}")

    @hq.command("restore-epoch")
    @click.option("--db", required=True)
    def restore_epoch(db: str) -> None:
        """After restoring HQ's database from a backup: start a new epoch so every outlet
        re-sends what the backup lacks and re-pulls."""
        # a serving HQ keeps announcing the epoch it read at start: restore only while stopped
        if store.is_url(db):  # no lock file named like the URL: the server tells who serves
            the_chain = chain(db)
            with postgres(the_chain).alone(
                    "stop every HQ process serving it before restoring its database "
                    "(docs/operations.md, \"Backups and point-in-time recovery\")"):
                epoch = the_chain.restore_epoch()
        else:
            with DatabaseLock(db, "loyalty hq restore-epoch").held(
                    "stop HQ before restoring its database (docs/operations.md, Backups)"):
                epoch = chain(db).restore_epoch()
        click.echo(f"new epoch {epoch}")

    @hq.command("staff-add")
    @click.option("--db", required=True)
    @click.option("--password-stdin", is_flag=True, help="Read the password from stdin.")
    @click.option("--replace", is_flag=True, help="Set a new password for an existing account "
                  "(and enable it).")
    @click.option("--role", type=click.Choice([str(r) for r in Role]), default=None,
                  help="What the account may do (docs/backoffice.md, Roles); a new account is "
                       "an administrator unless told, a replaced one keeps its role.")
    @click.argument("username")
    def staff_add(db: str, username: str, password_stdin: bool, replace: bool,
                  role: str | None) -> None:
        """Create a back-office or desk login (docs/backoffice.md); prompts for the password."""
        import sys

        from hq import staff

        password = (sys.stdin.readline().rstrip("\r\n") if password_stdin
                    else str(click.prompt("Password", hide_input=True, confirmation_prompt=True)))
        with chain(db).db.write() as conn:
            staff.add(conn, username, password, replace=replace,
                      role=Role(role) if role else None)
        click.echo(f"staff account {username} {'updated' if replace else 'created'}")

    @hq.command("invoice-pdf")
    @click.option("--db", required=True)
    @click.option("--out", "out", required=True, metavar="FILE",
                  help="Where to write the PDF ('-' for stdout).")
    @click.argument("number")
    def invoice_pdf(db: str, number: str, out: str) -> None:
        """Write invoice NUMBER as a PDF: what is printed and mailed (docs/invoices.md)."""
        import sys
        from pathlib import Path

        from hq import invoicedoc

        pdf = invoicedoc.render(chain(db), number)
        if out == "-":
            sys.stdout.buffer.write(pdf)
            return
        Path(out).write_bytes(pdf)
        click.echo(f"invoice {number}: {out} ({len(pdf)} bytes)")

    @hq.command("invoices-to-post")
    @click.option("--db", required=True)
    @click.option("--posted", "posted", multiple=True, metavar="NUMBER",
                  help="Record that invoice NUMBER went out by post (repeat for several).")
    @click.option("--pdf-dir", metavar="DIR", help="Also write each listed invoice's PDF there.")
    def invoices_to_post(db: str, posted: tuple[str, ...], pdf_dir: str | None) -> None:
        """Invoices to print and post: no e-mail consent or address, or the mail failed."""
        from pathlib import Path

        from hq import invoicedoc, notices
        from schema.money import money

        the_chain = chain(db)
        if posted:
            notices.mark_posted(the_chain, list(posted))
            click.echo(f"marked posted: {', '.join(posted)}")
        listed = notices.to_post(the_chain)
        for row in listed:
            owed = row["amount"] - row["paid_amount"]
            click.echo(f"{row['number']}  {row['name'] or row['customer_id']}  "
                       f"{money(owed)} due {row['due_on']}  ({row['why']})  "
                       f"{row['address'] or 'no postal address'}")
            if pdf_dir:
                folder = Path(pdf_dir)
                folder.mkdir(parents=True, exist_ok=True)
                (folder / f"invoice-{row['number']}.pdf").write_bytes(
                    invoicedoc.render(the_chain, row["number"]))
        click.echo(f"{len(listed)} invoice(s) to post" if listed else "no invoices to post")

    @hq.command()
    @click.option("--db", required=True)
    @click.option("--customer", metavar="C", help="Only this customer (id or club card number).")
    def mail(db: str, customer: str | None) -> None:
        """HQ's outgoing mail, newest first: queued, sent, failed (with the server's words)."""
        from hq import admin, mailqueue

        the_chain = chain(db)
        customer_id = admin.resolve_customer(the_chain, customer) if customer else None
        rows = mailqueue.listing(the_chain, customer_id)
        for r in rows:
            when = r["sent_at"] or (f"next try {r['next_attempt_at']}" if r["status"] == "queued"
                                    else r["queued_at"])
            click.echo(f"#{r['mail_id']} {r['status']:<7} {r['kind']:<15} {r['about']:<14} "
                       f"to {r['recipient']}  {when}  tries {r['attempts']}  {r['message_id']}"
                       + (f"  [{r['last_error']}]" if r["last_error"] else ""))
        click.echo(f"{len(rows)} message(s)" if rows else "no mail")

    @hq.command("settings")
    @click.option("--db", required=True)
    @click.option("--set", "values", multiple=True, metavar="KEY=VALUE",
                  help="Set a setting (repeat for several), e.g. payee.iban=SI56...")
    @click.option("--unset", "unset", multiple=True, metavar="KEY", help="Remove a setting.")
    @click.option("--smtp-password-stdin", is_flag=True,
                  help="Read smtp.password from stdin (never on the command line).")
    def settings_command(db: str, values: tuple[str, ...], unset: tuple[str, ...],
                         smtp_password_stdin: bool) -> None:
        """HQ's own settings: payee account, SMTP server, sender (docs/invoices.md)."""
        import sys

        from hq import settings
        from schema.errors import InvalidRequest

        changes: dict[str, str | None] = {}
        for value in values:
            key, equals, text = value.partition("=")
            if not equals:
                raise InvalidRequest(f"--set {value!r}: give KEY=VALUE, e.g. smtp.port=587")
            if key.strip() == "smtp.password":
                raise InvalidRequest("smtp.password is read from stdin "
                                     "(--smtp-password-stdin), never from the command line")
            changes[key.strip()] = text
        changes.update(dict.fromkeys(unset))
        if smtp_password_stdin:
            changes["smtp.password"] = sys.stdin.readline().rstrip("\r\n")
        the_chain = chain(db)
        if changes:
            settings.change(the_chain, changes)
        for key, shown in settings.shown(the_chain).items():
            click.echo(f"{key:<16} {shown}")

    @hq.command("import-statement")
    @click.option("--db", required=True)
    @click.argument("file", type=click.Path(dir_okay=False))
    def import_statement(db: str, file: str) -> None:
        """Import a bank statement (camt.053 or MT940): stamp the invoices it pays, list the
        rest; importing it again changes nothing (docs/statements.md)."""
        from pathlib import Path

        from hq import statements
        from hq.audit import COMMAND_LINE
        from schema.errors import NotFound

        try:
            data = Path(file).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"no file {file}") from None
        except OSError as error:
            raise NotFound(f"{file} cannot be read: {error.strerror}") from None
        report = statements.import_statement(chain(db), data, by=COMMAND_LINE)
        for line in statement_lines(report):
            click.echo(line)

    def day(option: str, text: str) -> Any:
        from datetime import date

        from schema.errors import InvalidRequest

        try:
            if len(text) != 10:
                raise ValueError(text)
            return date.fromisoformat(text)
        except ValueError:
            raise InvalidRequest(f"{option}: {text!r} is not a date: give YYYY-MM-DD") from None

    @hq.command()
    @click.option("--db", required=True)
    @click.option("--text", required=True,
                  help="The message, in the chain's default language (docs/greetings.md).")
    @click.option("--text-in", "texts", multiple=True, nargs=2, metavar="LANG TEXT",
                  help="The message in another language, e.g. --text-in de 'Guten Tag' "
                       "(repeat for several).")
    @click.option("--customer", metavar="C", help="Only this customer (id or club card number).")
    @click.option("--category", metavar="K", help="Only the customers of this category.")
    @click.option("--from", "valid_from", required=True, metavar="YYYY-MM-DD",
                  help="The first day it is shown (each outlet's local date).")
    @click.option("--to", "valid_to", required=True, metavar="YYYY-MM-DD",
                  help="The last day it is shown (each outlet's local date).")
    @click.option("--receipt", is_flag=True, help="Print it on the sale receipt too.")
    @click.option("--id", "announcement_id", metavar="ID",
                  help="Replace the announcement with this id [a new one].")
    def announce(db: str, text: str, texts: tuple[tuple[str, str], ...], customer: str | None,
                 category: str | None, valid_from: str, valid_to: str, receipt: bool,
                 announcement_id: str | None) -> None:
        """Announce a message at the tills: to one customer, a category or everybody;
        every outlet shows it (offline too) while its days last. Prints its id last."""
        from hq import announcements
        from hq.audit import COMMAND_LINE
        from schema.errors import InvalidRequest

        if customer and category:
            raise InvalidRequest("--customer or --category, not both: an announcement is for "
                                 "one customer, one category, or (neither) everybody")
        the_chain = chain(db)
        by_language = {announcements.default_language(the_chain): text, **dict(texts)}
        doc = announcements.announce(
            the_chain, by_language, day("--from", valid_from), day("--to", valid_to),
            customer=customer, category=category, print_on_receipt=receipt,
            announcement_id=announcement_id, by=COMMAND_LINE)
        audience = (f"customer {doc['customer_id']}" if doc.get("customer_id") else
                    f"category {doc['category']}" if doc.get("category") else "every customer")
        click.echo(f"announced to {audience}, {doc['valid_from']}..{doc['valid_to']}, in "
                   f"{', '.join(sorted(doc['texts']))}"
                   f"{', printed on receipts' if doc['print_on_receipt'] else ''}; id:")
        click.echo(doc["announcement_id"])

    @hq.command("announcements")
    @click.option("--db", required=True)
    @click.option("--withdraw", "withdrawn", multiple=True, metavar="ID",
                  help="Withdraw announcement ID at every outlet (repeat for several).")
    def announcements_command(db: str, withdrawn: tuple[str, ...]) -> None:
        """Head office's announcements, by their first day."""
        from hq import admin, announcements
        from hq.audit import COMMAND_LINE

        the_chain = chain(db)
        for announcement_id in withdrawn:
            admin.delete_master(the_chain, "announcement", announcement_id, by=COMMAND_LINE)
            click.echo(f"withdrawn: {announcement_id}")
        rows = announcements.listing(the_chain)
        for doc in rows:
            audience = (f"customer {doc['customer_id']}" if doc.get("customer_id") else
                        f"category {doc['category']}" if doc.get("category") else "everybody")
            text = next(iter(doc["texts"].values())).splitlines()[0]
            click.echo(f"{doc['announcement_id']}  {doc['valid_from']}..{doc['valid_to']}  "
                       f"{audience}{'  [receipt]' if doc['print_on_receipt'] else ''}  "
                       f"{', '.join(sorted(doc['texts']))}: {text[:60]}")
        click.echo(f"{len(rows)} announcement(s)" if rows else "no announcements")

    @hq.command()
    @click.option("--db", required=True)
    @click.option("--subject", required=True, help="The e-mail's subject.")
    @click.option("--body-file", required=True, metavar="FILE",
                  help="The e-mail's text (UTF-8), sent as it is.")
    @click.option("--category", metavar="K", help="Only customers of this category.")
    @click.option("--outlet", metavar="O", help="Only customers who registered at this outlet.")
    @click.option("--active-days", type=int, metavar="N",
                  help="Only customers active (registered, visited, bought...) in the last N days.")
    @click.option("--id", "newsletter_id", metavar="ID",
                  help="The newsletter's id: sending the same id again reaches only those "
                       "who do not have it yet [a new id].")
    def newsletter(db: str, subject: str, body_file: str, category: str | None,
                   outlet: str | None, active_days: int | None,
                   newsletter_id: str | None) -> None:
        """Send a newsletter to the consenting customers of a segment (docs/invoices.md):
        queued here, mailed by `loyalty hq serve`'s mail run. Prints its id last."""
        from pathlib import Path

        from hq import newsletters
        from hq.audit import COMMAND_LINE
        from schema.errors import InvalidRequest, NotFound

        try:
            body = Path(body_file).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise NotFound(f"no file {body_file}") from None
        except UnicodeDecodeError:
            raise InvalidRequest(f"{body_file} is not UTF-8 text") from None
        except OSError as error:
            raise NotFound(f"{body_file} cannot be read: {error.strerror}") from None
        sent = newsletters.send(chain(db), subject, body, category=category, outlet=outlet,
                                active_days=active_days, newsletter_id=newsletter_id,
                                by=COMMAND_LINE)
        click.echo(f"newsletter {sent['subject']!r}: {sent['recipients']} consenting "
                   f"customer(s); {sent['decided'].get('pending', 0)} to mail by HQ's mail "
                   "run; id:")
        click.echo(sent["newsletter_id"])

    return hq


TITLES = {
    "matched": "stamped paid",
    "suggested": "suggested: a clerk confirms (POST /v1/admin/statement-matches/ID/confirm)",
    "overpayment": "overpayments: not stamped, refund or settle by hand",
    "unmatched": "not matched",
    "not_a_payment": "not payments",
    "duplicate": "already imported: nothing changed",
}


def postgres(chain: Chain) -> PgStore:
    """The PostgreSQL store of a chain opened on a URL (`Chain.db` is typed as SQLite's)."""
    assert store.is_url(chain.db.where)
    return cast("PgStore", chain.db)


def statement_lines(report: Any) -> list[str]:
    """A statement import's report as the command prints it: every entry once, grouped."""
    from banking.statement import shown
    from schema.money import money

    lines = []
    for s in report.statements:
        period = f"{s.from_date or '?'}..{s.to_date or '?'}"
        lines.append(f"statement {s.statement_id} ({s.format}), account {s.account}, "
                     f"{s.currency}, {period}: {s.entries} entries")
    for group, title in TITLES.items():
        entries = [e for e in report.entries if e.status == group]
        lines.append(f"{title} ({len(entries)})")
        for e in entries:
            sign = "-" if e.direction == "debit" else ""
            paid = ", ".join(f"{a.number} {money(a.amount)}" for a in e.allocations)
            named = paid or ", ".join(e.invoices)
            words = [f"  #{e.entry_id} entry {e.position}", str(e.booking_date or "-"),
                     f"{sign}{shown(e.amount, e.currency)} {e.currency}", e.debtor_name or "-"]
            if named:
                words.append(f"-> {named}")
            if e.part_payment:
                words.append("(part payment)")
            if e.reason and group != "matched":
                words.append(f"({e.reason})")
            lines.append("  ".join(words))
    counts = report.counts
    lines.append(f"{counts['matched']} stamped, {counts['suggested']} suggested, "
                 f"{counts['overpayment']} overpaid, {counts['unmatched']} not matched, "
                 f"{counts['not_a_payment']} not payments, {counts['duplicate']} already "
                 "imported")
    return lines
