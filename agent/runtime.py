"""Composing a running agent: replica, till API, sync loop, schedule and card readers.

Promises: the till API serves even when HQ is unreachable or a reader is broken; the
agent refuses to listen beyond loopback without a till token (invariant 8); periodic work
(the timer-driven push retry, the stuck-queue check, reader health) runs on APScheduler;
WAL checkpoints run on their own connection, off the till's path; one agent per database
(`serve` holds schema.dblock's lock for the process's life). Must never: put network I/O
in a till request.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from fastapi import FastAPI

from agent.api import create_app
from agent.config import AgentConfig, ModemEntry
from agent.outlet import Outlet
from agent.readers import TillReaders
from agent.replica import set_meta
from agent.replication import OutletReplica
from agent.status import outlet_status
from schema.dblock import DatabaseLock
from schema.errors import ConfigError, LoyaltyError, Unauthorized
from sync.dialer import Dialer
from sync.loop import RouterLoop
from sync.modem import ModemSettings, ModemTransport
from sync.router import RouterTransport
from web import serving

log = logging.getLogger(__name__)

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
RETRY_EVERY_S = 5
HEALTH_EVERY_S = 60
READER_HEALTH_EVERY_S = 10


@dataclass
class Agent:
    outlet: Outlet
    app: FastAPI
    loop: RouterLoop | None = None
    readers: TillReaders | None = None
    dialer: Dialer | None = None
    dial_schedule: str = "every 2h"
    scheduler: BackgroundScheduler = field(
        default_factory=lambda: BackgroundScheduler(timezone=UTC))

    def start(self) -> None:
        if self.loop is not None:
            self.loop.start()
            self.scheduler.add_job(self.loop.kick, "interval", seconds=RETRY_EVERY_S,
                                   id="push-retry")
        self.outlet.db.start_checkpointer()
        self.scheduler.add_job(self.health, "interval", seconds=HEALTH_EVERY_S, id="health")
        if self.dialer is not None:
            self.dialer.schedule(self.scheduler, self.dial_schedule)
        if self.readers is not None:
            self.readers.start()
            self.scheduler.add_job(self.readers.persist_health, "interval",
                                   seconds=READER_HEALTH_EVERY_S, id="reader-health")
        self.scheduler.start()

    def health(self) -> None:
        figures = outlet_status(self.outlet)
        if figures["queue_stuck"]:
            log.error("sync queue stuck: %d events pending since %s (last error: %s)",
                      figures["pending_events"], figures["oldest_pending_at"],
                      figures["last_sync_error"])

    def extra_status(self) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if self.loop is not None:
            extra["sync_loop"] = dict(self.loop.state)
        if self.readers is not None:
            extra["readers"] = self.readers.health()
        return extra

    def stop(self) -> None:
        self.scheduler.shutdown(wait=False)
        if self.dialer is not None:
            self.dialer.stop()
        if self.readers is not None:
            self.readers.stop()
        if self.loop is not None:
            self.loop.stop()
        self.outlet.close()


def modem_dialer(outlet: Outlet, entry: ModemEntry, token: str) -> Dialer:
    """The outlet's dialer; remembers its settings so `loyalty sync --db` can dial too."""
    settings = ModemSettings(entry.port, entry.number, tuple(entry.init), entry.guard_s,
                             entry.dial_timeout_s)
    with outlet.db.write() as conn:
        set_meta(conn, "link", "modem")
        set_meta(conn, "modem", entry.model_dump_json())
        set_meta(conn, "hq_token", token)

    def record(figures: dict[str, Any]) -> None:
        with outlet.db.write() as conn:
            for key, value in figures.items():
                set_meta(conn, key, json.dumps(value) if isinstance(value, dict) else value or "")

    return Dialer(OutletReplica(outlet), lambda: ModemTransport(settings, token), record,
                  window_s=entry.window_minutes * 60)


def start_from_snapshot(db: str, hq: str, token: str, outlet_id: str | None) -> None:
    """A new or wiped outlet starts from HQ's snapshot when HQ offers one, before the till
    API opens (docs/sync.md, "Snapshot bootstrap"); if that cannot be done now (HQ down, a
    damaged download), the sync loop pulls page by page instead."""
    from agent import snapshot

    try:
        boot = snapshot.from_hq(db, hq, token, outlet_id)
    except LoyaltyError as exc:
        if isinstance(exc, ConfigError):
            raise
        if isinstance(exc, Unauthorized):  # a refused token: the sync loop says so, once,
            return                         # with how to get a new one (FailureLog)
        log.warning("no snapshot bootstrap (%s): pulling from HQ page by page", exc)
        return
    if boot is not None:
        log.warning("started from HQ's snapshot at cursor %d (%d customers)",
                    boot.header.cursor, boot.header.customers)


def check(cfg: AgentConfig) -> str:
    """Refuses a configuration that cannot serve; the database's path."""
    if not cfg.db:
        raise ConfigError("say where the outlet's database is (--db or db = ... in the config)")
    if cfg.host not in LOOPBACK and not cfg.till_token:
        raise ConfigError(f"listening on {cfg.host} needs a till token (--till-token)")
    if (cfg.hq or cfg.modem) and not cfg.token:
        raise ConfigError("a chain outlet needs its --token (from `loyalty hq outlet-add`)")
    if cfg.hq and cfg.modem:
        raise ConfigError("choose one link to HQ: hq = URL (router) or [modem]")
    return cfg.db


def build(cfg: AgentConfig) -> Agent:
    db = check(cfg)
    if cfg.hq and cfg.token:
        start_from_snapshot(db, cfg.hq, cfg.token, cfg.outlet)
    outlet = Outlet(db, cfg.outlet, card_range=cfg.card_range,
                    chain=bool(cfg.hq or cfg.modem))
    loop = None
    if cfg.hq and cfg.token:
        hq_url, token = cfg.hq, cfg.token
        with outlet.db.write() as conn:  # so `loyalty sync --db` can reach HQ too
            set_meta(conn, "hq_url", hq_url)
            set_meta(conn, "hq_token", token)
            set_meta(conn, "link", "router")
        loop = RouterLoop(OutletReplica(outlet), lambda: RouterTransport(hq_url, token))
        outlet.on_commit(loop.kick)
    agent = Agent(outlet, FastAPI())
    agent.app = create_app(outlet, till_token=cfg.till_token, extra_status=agent.extra_status)
    agent.loop = loop
    if cfg.modem and cfg.token:
        agent.dialer = modem_dialer(outlet, cfg.modem, cfg.token)
        agent.dial_schedule = cfg.modem.schedule
    if cfg.readers:
        agent.readers = TillReaders(outlet, cfg.readers)
    return agent


def serve(cfg: AgentConfig) -> None:
    """Serves until stopped, holding the database's lock all along (one agent per database,
    schema.dblock): taken before the database is opened, dropped by the kernel at exit."""
    link = "router" if cfg.hq else "modem" if cfg.modem else None
    lock = DatabaseLock(check(cfg), "loyalty agent serve", f"{cfg.host}:{cfg.port}", link)
    with lock.held("one agent per database: stop that one first, or give this one its own "
                   "database"):
        agent = build(cfg)
        agent.start()
        log.info("outlet %s serving the till API on %s:%s", agent.outlet.outlet_id, cfg.host,
                 cfg.port)
        try:
            serving.run(agent.app, cfg.host, cfg.port)
        finally:
            agent.stop()
