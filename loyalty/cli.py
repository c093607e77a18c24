"""The `loyalty` command: the composition root of the command line (docs/design.md, "Map").

It assembles the product: the outlet's commands (`agent serve`, `status`, `sync`, defined in
agent/cli.py), headquarters' (`loyalty hq ...`, hq/cli.py, handed the agent's default
programme as the master data a new chain starts with, so neither side imports the other),
and the commands that belong to neither side alone: `report` (on an HQ or an outlet
database) and `demo` (a whole chain in one process, loyalty/demo.py).

The one place errors become CLI output (`LoyaltyGroup`): `error [code]: message` on stderr,
exit status 1 (2 for a usage mistake, as click says it). Commands below only raise. Output
meant for scripts (tokens) is on the last line of stdout.
"""

from __future__ import annotations

import logging
import sys
import traceback
from pathlib import Path
from typing import Any, NoReturn

import click

from agent import cli as agent_cli
from agent.programme import default_documents
from hq import cli as hq_cli
from schema.database import storage_error
from schema.errors import LoyaltyError
from schema.reports import NAMES as REPORT_NAMES


class LoyaltyGroup(click.Group):
    """Every failure of a command is one `error [code]: message` line and exit status 1:
    a `LoyaltyError` as it says, a storage fault as `storage_unavailable`, anything else
    as `internal_error` (a bug) whose traceback is printed before it only under --verbose."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except LoyaltyError as exc:
            fail(ctx, exc)
        except Exception as exc:  # noqa: BLE001 - the last resort: never a traceback
            known = storage_error(exc)
            if known is not None:
                fail(ctx, known)
            if ctx.find_root().params.get("verbose"):
                click.echo("".join(traceback.format_exception(exc)).rstrip(), err=True)
            fail(ctx, LoyaltyError(f"{type(exc).__name__}: {exc} (run `loyalty --verbose "
                                   "...` for details)"))


def fail(ctx: click.Context, exc: LoyaltyError) -> NoReturn:
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
@click.option("--keep", metavar="DIR", type=click.Path(file_okay=True, path_type=Path),
              help="Leave the chain's databases in DIR (new or empty) and print how to serve "
                   "them, with a staff login.")
def demo(link: str, keep: Path | None) -> None:
    """Run a scripted day of a small chain on temporary SQLite files."""
    from loyalty.demo import run_demo

    run_demo(link=link, out=click.echo, keep=keep)


@main.command()
@click.argument("name", type=click.Choice(list(REPORT_NAMES)))
@click.option("--db", required=True,  # a missing file is not_found (reports.connect)
              help="An HQ or an outlet database (detected from its tables), or HQ's "
                   "postgresql:// URL.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv"]), default="table",
              show_default=True, help="csv: a header row, amounts in minor units.")
@click.option("--from", "date_from", metavar="DATE", help="First day, inclusive (YYYY-MM-DD, UTC).")
@click.option("--to", "date_to", metavar="DATE", help="Last day, inclusive (YYYY-MM-DD, UTC).")
@click.option("--by", type=click.Choice(["category", "day", "week", "month"]),
              help="Group by customer category, or over time (turnover, members, "
                   "points-liability).")
@click.option("--outlet", help="Only this outlet (HQ database).")
@click.option("--category", help="Only customers now in this category.")
@click.option("--customer", help="Only this customer (required by `receipts`).")
@click.option("--today", metavar="DATE",
              help="points-liability: the day to split the balance as of [today, UTC].")
def report(name: str, db: str, fmt: str, **filters: Any) -> None:
    """A report on an HQ or outlet database (docs/reports.md)."""
    from agent.progress import Progress
    from hq import store
    from schema import reports

    if store.is_url(db):  # HQ on PostgreSQL: the report reads one REPEATABLE READ snapshot
        hq_store = store.open_hq(db)
        try:
            with hq_store.snapshot() as conn, Progress(f"report {name}", unit="rows") as progress:
                result = reports.run(conn, name, reports.Filters(**filters),
                                     progress=progress.update)
        finally:
            hq_store.close()
    else:
        conn = reports.connect(db)
        try:
            with Progress(f"report {name}", unit="rows") as progress:
                result = reports.run(conn, name, reports.Filters(**filters),
                                     progress=progress.update)
        finally:
            conn.close()
    if fmt == "csv":
        click.echo(reports.render_csv(result), nl=False)
    else:
        click.echo(reports.render_table(result))


for _command in agent_cli.COMMANDS:
    main.add_command(_command)
def _progress(name: str, unit: str) -> Any:
    """agent/progress.py's display, imported when long work starts (not at every command)."""
    from agent.progress import Progress

    return Progress(name, unit)


main.add_command(hq_cli.group(default_documents, cls=LoyaltyGroup, progress=_progress),
                 name="hq")


if __name__ == "__main__":
    sys.exit(main())
