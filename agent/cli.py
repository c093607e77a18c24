"""The outlet's commands of `loyalty`: `agent serve`, `status` and `sync`.

Plain click commands, a thin layer over the agent's library; loyalty/cli.py (the composition
root) registers every one of `COMMANDS` under its name. Promises: a refusal is raised as a
`LoyaltyError` (or a storage fault) and rendered by the root as one `error [code]: message`
line, never printed here; output meant for scripts is on the last line of stdout. Must
never: import loyalty/ or hq/ (tests/test_layers.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from sync.client import PassReport


@click.group()
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


@click.command()
@click.option("--db", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True,
              help="Every figure, machine-readable (UTC ISO 8601 times), instead of a table.")
@click.option("--verbose", is_flag=True,
              help="Add the engineer's fields: cursor, HQ epoch, the stored UTC times.")
def status(db: str, as_json: bool, verbose: bool) -> None:
    """The store manager's view: sync state, pending events, counts, errors."""
    from agent.replica import open_replica
    from agent.status import render_status, replica_status

    replica = open_replica(db)
    try:
        figures = replica_status(replica)
    finally:
        replica.close()
    if as_json:
        click.echo(json.dumps(figures, indent=2))
        return
    click.echo(render_status(figures, verbose=verbose))


@agent.command("bootstrap")
@click.option("--db", required=True, help="The outlet's SQLite file (created if new).")
@click.option("--from", "source", required=True, metavar="FILE",
              help="A snapshot file from `loyalty hq snapshot` (carried by hand).")
@click.option("--outlet", help="This outlet's id (needed for a new database).")
def agent_bootstrap(db: str, source: str, outlet: str | None) -> None:
    """Start a new or wiped outlet from a snapshot file; sync then pulls only what changed
    after it (docs/sync.md, "Snapshot bootstrap")."""
    from agent import snapshot
    from agent.progress import Progress

    snapshot.clean(Path(db))
    with Progress("unpack", unit="B") as bar:
        header = snapshot.apply(db, source, outlet_id=outlet, progress=bar.update)
    click.echo(f"{db}: started from the snapshot at cursor {header.cursor} of HQ epoch "
               f"{header.epoch} ({header.customers} customers, built {header.built_at}); "
               "the next sync pulls what changed after it")


@click.command()
@click.option("--db", required=True, type=click.Path(exists=True, dir_okay=False))
def sync(db: str) -> None:
    """One sync round now; exit 0 when everything pending was acknowledged."""
    from agent import snapshot
    from schema.dblock import DatabaseLock

    # The modem link needs no lock: its port is opened exclusively, so a call of the agent
    # and this one never overlap. A router agent syncs all the time, and two pullers at
    # once could move the replica's cursor back, or swap a snapshot under it
    # (docs/operations.md): the lock comes before anything else.
    local = snapshot.read_local(Path(db))
    lock = None
    if local is None or local.meta.get("link") != "modem":
        lock = DatabaseLock(db, "loyalty sync", link="router")
        lock.acquire(f"the agent syncs this database with HQ by itself: see `loyalty "
                     f"status --db {db}` (stop the agent to sync by hand)")
    try:
        boot = snapshot.from_hq(db)  # a new or wiped outlet starts from HQ's snapshot
        if boot is not None:
            click.echo(f"started from HQ's snapshot at cursor {boot.header.cursor} "
                       f"({boot.header.customers} customers"
                       f"{'; the download resumed' if boot.resumed else ''})", err=True)
        report = _sync_round(db)
    finally:
        if lock is not None:
            lock.release()
    click.echo(f"pushed {report.pushed} ({report.duplicates} already at HQ, {report.flagged} "
               f"flagged), pulled {report.pulled}, pending {report.pending_after}")
    if report.pending_after:
        raise click.exceptions.Exit(1)


def _sync_round(db: str) -> PassReport:
    """One pass over the database's own link to HQ (router or modem)."""
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
                return dialer.call(progress=progress.update)
        if url and token:
            link = RouterTransport(url, token)
            try:
                with Progress("pull") as progress:
                    return run_once(OutletReplica(outlet), link, progress=progress.update)
            finally:
                link.close()
        raise ConfigError(f"{db} has never been served with a link to HQ: nothing to sync with")
    finally:
        outlet.close()


COMMANDS: tuple[click.Command, ...] = (agent, status, sync)
