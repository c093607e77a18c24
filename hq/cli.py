"""`loyalty hq ...`: headquarters' commands, a thin layer over hq/.

Tokens are printed alone on the last line of stdout so scripts can take them with
`tail -n 1`. The default programme a new chain starts with is handed in by the caller
(`group(seed)`), so HQ does not depend on the agent's code.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Callable
from typing import Any

import click

from hq.chain import Chain, MasterSeed

SeedProvider = Callable[[], MasterSeed]


def group(seed: SeedProvider, cls: type[click.Group] = click.Group) -> click.Group:
    @click.group(cls=cls)
    def hq() -> None:
        """Headquarters: the server and head-office operations."""

    def chain(db: str) -> Chain:
        return Chain(db, seed=seed())

    @hq.command()
    @click.option("--db", required=True, help="HQ's SQLite file (created if new).")
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
    def serve(db: str, host: str, port: int, modems: tuple[str, ...], modem_init: str,
              modem_guard: float, clock_tolerance: float) -> None:
        """Serve the sync and admin API (and answer modem calls with --modem)."""
        from hq import schedule
        from hq.api import create_app
        from hq.modembank import LineSettings, ModemBank
        from web import serving

        # Ingest allocates many short-lived objects: the default GC thresholds cost 15-20 %
        # of HQ's CPU per event (measured by bench/sync.py); collect less often.
        gc.set_threshold(20_000, 50, 50)
        the_chain = chain(db)
        the_chain.clock_tolerance_s = clock_tolerance
        scheduler = schedule.start(the_chain)
        the_chain.db.start_checkpointer()
        init = tuple(c.strip() for c in modem_init.split(";") if c.strip())
        bank = ModemBank(the_chain, [LineSettings(m, init, modem_guard) for m in modems])
        bank.start()
        click.echo(f"HQ serving {db} on http://{host}:{port} (epoch {the_chain.epoch}); "
                   f"{len(modems)} modem line(s)", err=True)
        try:
            serving.run(create_app(the_chain), host, port, on_exit=the_chain.waiters.close)
        finally:
            bank.stop()
            scheduler.shutdown(wait=False)
            the_chain.close()

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

        the_chain = chain(db)
        customer_id = admin.resolve_customer(the_chain, customer)
        view = admin.set_status(the_chain, customer_id, status, reason)
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
        made = admin.adjust(the_chain, customer_id, int(points), amount, reason)
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
            click.echo(f"{m['number']}  customer {m['customer_id']}  {money(m['amount'])}  "
                       f"due {m['due_on']}  ({m['items']} credit purchases)")
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
        epoch = chain(db).restore_epoch()
        click.echo(f"new epoch {epoch}")

    @hq.command("staff-add")
    @click.option("--db", required=True)
    @click.option("--password-stdin", is_flag=True, help="Read the password from stdin.")
    @click.option("--replace", is_flag=True, help="Set a new password for an existing account.")
    @click.argument("username")
    def staff_add(db: str, username: str, password_stdin: bool, replace: bool) -> None:
        """Create a back-office login (docs/backoffice.md); prompts for the password."""
        import sys

        from hq import staff

        password = (sys.stdin.readline().rstrip("\r\n") if password_stdin
                    else str(click.prompt("Password", hide_input=True, confirmation_prompt=True)))
        with chain(db).db.write() as conn:
            staff.add(conn, username, password, replace=replace)
        click.echo(f"staff account {username} {'updated' if replace else 'created'}")

    return hq
