"""The `loyalty` command: a thin layer over the library (docs/design.md).

The one place errors become CLI output: `error [code]: message` on stderr, exit status 1
(2 for a usage mistake). Output meant for scripts (tokens) is on the last line of stdout.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

import click

from schema.errors import LoyaltyError
from schema.reports import NAMES as REPORT_NAMES


class LoyaltyGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LoyaltyError as exc:
            click.echo(f"error [{exc.code}]: {exc.message}", err=True)
            ctx.exit(1)


@click.group(cls=LoyaltyGroup)
@click.option("-v", "--verbose", is_flag=True, help="Log more.")
@click.version_option(package_name="loyalty", prog_name="loyalty",
                      message="%(prog)s %(version)s", help="Print the installed version.")
def main(verbose: bool) -> None:
    """Offline-first loyalty for retail and hospitality chains."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@main.command()
@click.option("--link", type=click.Choice(["router", "modem"]), default="router",
              show_default=True, help="How the demo outlets reach headquarters.")
def demo(link: str) -> None:
    """Run a scripted day of a small chain on temporary SQLite files."""
    from agent.demo import run_demo

    run_demo(link=link, out=click.echo)


@main.group(cls=LoyaltyGroup)
def agent() -> None:
    """The outlet agent."""


@agent.command("serve")
@click.option("--db", help="The outlet's SQLite file (created if new).")
@click.option("--outlet", help="This outlet's id (needed for a new database).")
@click.option("--hq", help="Headquarters URL, e.g. http://hq.example:8700.")
@click.option("--token", help="This outlet's token from `loyalty hq outlet-add`.")
@click.option("--host", help="Address of the till API [127.0.0.1].")
@click.option("--port", type=int, help="Port of the till API [8701].")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="TOML configuration file; options given here win over it.")
@click.option("--till-token", help="Token tills must send when listening beyond loopback.")
@click.option("--card-range", type=int, help="This outlet's card number range (from HQ).")
def agent_serve(config_path: str | None, **options: Any) -> None:
    """Serve the till API, run the sync loop and the card readers."""
    from agent import config
    from agent.runtime import serve

    serve(config.load(config_path, **options))


@main.command()
@click.option("--db", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True,
              help="Every figure, machine-readable (UTC ISO 8601 times), instead of a table.")
@click.option("--verbose", is_flag=True,
              help="Add the engineer's fields: cursor, HQ epoch, the stored UTC times.")
def status(db: str, as_json: bool, verbose: bool) -> None:
    """The store manager's view: sync state, pending events, counts, errors."""
    from agent.replica import open_replica
    from agent.status import replica_status

    replica = open_replica(db)
    try:
        figures = replica_status(replica)
    finally:
        replica.close()
    if as_json:
        click.echo(json.dumps(figures, indent=2))
        return
    click.echo(render_status(figures, verbose=verbose))


def describe_call(session: dict[str, Any] | None) -> str:
    from agent.status import local_time

    if not session:
        return "none yet"
    return (f"{session['result']} at {local_time(session['ended_at'])}, "
            f"{session.get('bytes_sent', 0)} B sent, {session.get('bytes_received', 0)} B received"
            + (f", {session['connect_bps']} bit/s" if session.get("connect_bps") else ""))


def render_status(figures: dict[str, Any], verbose: bool = False) -> str:
    """The status as a table of (label, value) rows for a store manager: times local and
    readable. `verbose` adds what an engineer needs (cursor, epoch, the stored times)."""
    from agent.status import local_time

    counts = figures.get("counts", {})
    rows = [
        ("Outlet", figures["outlet_id"]),
        ("Link", figures.get("link")),
        ("Pending events", figures["pending_events"]),
        ("Oldest pending", local_time(figures.get("oldest_pending_at")) or "-"),
        ("Queue stuck", "YES - check the link to HQ" if figures.get("queue_stuck") else "no"),
        ("Last sync", local_time(figures.get("last_sync_at")) or "never"),
        ("Last sync error", figures.get("last_sync_error") or "-"),
        ("Clock", figures.get("clock") or "-"),
        ("Last sale", local_time(figures.get("last_sale_at")) or "-"),
        ("Customers", counts.get("customers", 0)),
        ("Sales", counts.get("sales", 0)),
        ("Redemptions", counts.get("redemptions", 0)),
    ]
    if "next_dial_at" in figures:
        rows.append(("Next dial", local_time(figures["next_dial_at"]) or "not scheduled"))
        rows.append(("Last call", describe_call(figures.get("last_session"))))
    for reader in figures.get("readers", []):
        rows.append((f"Reader {reader.get('name')}", f"{reader.get('state')} "
                     f"{reader.get('last_error') or ''}".strip()))
    if verbose:
        rows.append(("Cursor", figures["cursor"]))
        rows.append(("HQ epoch", figures.get("hq_epoch") or "-"))
        rows += [(key, value or "-") for key, value in figures.items() if key.endswith("_at")]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


@main.command()
@click.option("--db", required=True, type=click.Path(exists=True, dir_okay=False))
def sync(db: str) -> None:
    """One sync round now; exit 0 when everything pending was acknowledged."""
    from agent.outlet import Outlet
    from agent.progress import Progress
    from agent.replica import get_meta
    from agent.replication import OutletReplica
    from schema.errors import ConfigError
    from sync.client import run_once
    from sync.router import RouterTransport

    outlet = Outlet(db)
    try:
        url, token = get_meta(outlet.db, "hq_url"), get_meta(outlet.db, "hq_token")
        modem = get_meta(outlet.db, "modem")
        if get_meta(outlet.db, "link") == "modem" and modem and token:
            from agent.config import ModemEntry
            from agent.runtime import modem_dialer

            dialer = modem_dialer(outlet, ModemEntry.model_validate_json(modem), token)
            with Progress("pull") as progress:
                report = dialer.call(progress=progress.update)
        elif url and token:
            link = RouterTransport(url, token)
            try:
                with Progress("pull") as progress:
                    report = run_once(OutletReplica(outlet), link, progress=progress.update)
            finally:
                link.close()
        else:
            raise ConfigError(f"{db} has never been served with a link to HQ: nothing to sync with")
    finally:
        outlet.close()
    click.echo(f"pushed {report.pushed} ({report.duplicates} already at HQ, {report.flagged} "
               f"flagged), pulled {report.pulled}, pending {report.pending_after}")
    if report.pending_after:
        raise click.exceptions.Exit(1)


@main.command()
@click.argument("name", type=click.Choice(list(REPORT_NAMES)))
@click.option("--db", required=True,  # a missing file is not_found (reports.connect)
              help="An HQ or an outlet database (detected from its tables).")
@click.option("--format", "fmt", type=click.Choice(["table", "csv"]), default="table",
              show_default=True, help="csv: a header row, amounts in minor units.")
@click.option("--from", "date_from", metavar="DATE", help="First day, inclusive (YYYY-MM-DD, UTC).")
@click.option("--to", "date_to", metavar="DATE", help="Last day, inclusive (YYYY-MM-DD, UTC).")
@click.option("--by", type=click.Choice(["category"]), help="Group by customer category.")
@click.option("--outlet", help="Only this outlet (HQ database).")
@click.option("--category", help="Only customers now in this category.")
@click.option("--customer", help="Only this customer (required by `receipts`).")
@click.option("--today", metavar="DATE",
              help="points-liability: the day to split the balance as of [today, UTC].")
def report(name: str, db: str, fmt: str, **filters: Any) -> None:
    """A report on an HQ or outlet database (docs/reports.md)."""
    from agent.progress import Progress
    from schema import reports

    conn = reports.connect(db)
    try:
        with Progress(f"report {name}", unit="rows") as progress:
            result = reports.run(conn, name, reports.Filters(**filters), progress=progress.update)
    finally:
        conn.close()
    if fmt == "csv":
        click.echo(reports.render_csv(result), nl=False)
    else:
        click.echo(reports.render_table(result))


def _seed() -> list[tuple[str, dict[str, Any]]]:
    from agent.programme import default_documents

    return default_documents()


def _register_hq() -> None:
    from hq.cli import group

    main.add_command(group(_seed, cls=LoyaltyGroup), name="hq")


_register_hq()


if __name__ == "__main__":
    sys.exit(main())
