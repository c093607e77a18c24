"""Composing a running agent: replica, till API, sync loop and card readers.

Promises: the till API serves even when HQ is unreachable or a reader is broken; the
agent refuses to listen beyond loopback without a till token (invariant 8).
"""

from __future__ import annotations

import logging

from agent import serving
from agent.api import create_app
from agent.config import AgentConfig
from agent.outlet import Outlet
from schema.errors import ConfigError

log = logging.getLogger(__name__)

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def build(cfg: AgentConfig) -> tuple[Outlet, object]:
    if not cfg.db:
        raise ConfigError("say where the outlet's database is (--db or db = ... in the config)")
    if cfg.host not in LOOPBACK and not cfg.till_token:
        raise ConfigError(f"listening on {cfg.host} needs a till token (--till-token)")
    if cfg.hq and not cfg.token:
        raise ConfigError("--hq needs this outlet's --token (from `loyalty hq outlet-add`)")
    outlet = Outlet(cfg.db, cfg.outlet, card_range=cfg.card_range, chain=bool(cfg.hq))
    app = create_app(outlet, till_token=cfg.till_token)
    return outlet, app


def serve(cfg: AgentConfig) -> None:
    outlet, app = build(cfg)
    log.info("outlet %s serving the till API on %s:%s", outlet.outlet_id, cfg.host, cfg.port)
    try:
        serving.run(app, cfg.host, cfg.port)  # type: ignore[arg-type]
    finally:
        outlet.close()
