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
from schema.dblock import DatabaseLock

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
    def serve(db: str, host: str, port: int, modems: tuple[str, ...], modem_init: str,
              modem_guard: float) -> None:
        """Serve the sync and admin API (and answer modem calls with --modem)."""
        from agent import serving
        from hq import schedule
        from hq.api import create_app
        from hq.modembank import LineSettings, ModemBank

        # Ingest allocates many short-lived objects: the default GC thresholds cost 15-20 %
        # of HQ's CPU per event (measured by bench/sync.py); collect less often.
        gc.set_threshold(20_000, 50, 50)
        lock = DatabaseLock(db, "loyalty hq serve", f"{host}:{port}")
        with lock.held("one HQ per database: stop that one first"):  # for the process's life
            the_chain = chain(db)
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

    @hq.command()
    @click.option("--db", required=True)
    @click.argument("customer_id")
    def ban(db: str, customer_id: str) -> None:
        """Ban a customer everywhere."""
        from hq import admin

        view = admin.set_status(chain(db), customer_id, "banned")
        click.echo(f"{customer_id} is now {view['status']}")

    @hq.command()
    @click.option("--db", required=True)
    @click.argument("customer_id")
    def customer(db: str, customer_id: str) -> None:
        """HQ's authoritative view of a customer."""
        from hq import admin

        click.echo(json.dumps(admin.customer_view(chain(db), customer_id), indent=2))

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
        with DatabaseLock(db, "loyalty hq restore-epoch").held(
                "stop HQ before restoring its database (docs/operations.md, Backups)"):
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
