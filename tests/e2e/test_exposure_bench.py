"""bench/exposure.py at a tiny size: the offline bound holds and the adversary reaches it.

Real processes (the `rig` fixture: HQ and two outlets, `loyalty ... serve` on loopback),
two adversarial cards, 31 days offline with a 30-day window, so the outlets' clocks move
once (a second window) and the outlet-wide `outlet_floor_returns` binds the second card.
The loss is read from HQ's ledger after the sync (the bench's module docstring defines
it); the bound is computed from the settings (docs/programme.md, "The offline bound").
"""

from __future__ import annotations

import sys
from pathlib import Path

from chainkit import ChainRig

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import exposure  # bench/ is no package: the bench runs as a script

TINY = exposure.Settings(outlets=2, days=31, cards=2, window_days=30,
                         outlet_floor_returns=30_000)


def test_the_adversary_reaches_the_offline_bound_and_never_passes_it(rig: ChainRig) -> None:
    result = exposure.simulate(rig, TINY)
    card, chain = exposure.bounds(TINY)
    # the bound from the settings: 2 outlets, 2 windows, the second card capped by L
    assert (card.points, card.credit, card.refunds) == (2 * 1_000, 20_000, 2 * 2 * 20_000)
    assert chain.refunds == 2 * min(2 * 20_000, 30_000) * 2
    # never passed, per card and per chain, as a whole and part by part
    assert result.worst_loss_ratio <= 1, result.loss
    assert result.chain_loss_ratio <= 1, result.loss
    for part in ("points", "credit", "refunds"):
        assert result.ratio(part) <= 1, (part, result.loss)
    # and reached: each limit is tight, not loose
    for part in ("points", "credit", "refunds"):
        assert result.ratio(part) >= 0.95, (part, result.loss)
    assert result.chain_loss_ratio >= 0.95, result.loss
    # every refund beyond the first of a unit was a refund no outlet could check: HQ flags
    # the returns that together give back more than the sale, and the tills refused the rest
    assert result.flags > 0
    refused = {key for c in result.cards for key in c.refused}
    assert "return:offline_limit_exceeded" in refused, refused
