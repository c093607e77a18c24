"""An outlet with only a modem starts from a snapshot carried by hand, then its calls
carry only what changed after the snapshot (docs/sync.md, "Carrying a snapshot by hand").
Real processes: the line simulator, `loyalty hq serve --modem`, `loyalty hq snapshot`,
`loyalty agent bootstrap --from FILE`, `loyalty agent serve` with a [modem] table and
`loyalty sync` dialling."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from modemkit import ModemOutlet, ModemRig

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: snapshotkit
from chainkit import cli
from snapshotkit import as_hq_sees_it, hq_state, push_registrations, replica_state


@pytest.mark.slow
def test_a_hand_carried_snapshot_then_the_modem_carries_only_the_increments(
        tmp_path: Path) -> None:
    rig = ModemRig(tmp_path, [], lines=1, speed_bps=115_200, spare_outlets=1)
    try:
        rig.start()
        hq = rig.hq
        assert hq is not None
        token = hq.outlet_add("M")
        hq.outlet_add("R")
        seq = push_registrations(hq.url, hq.tokens["R"], "R", 1, 2_000)
        carried = tmp_path / "carried.snapshot"
        made = cli("hq", "snapshot", "--db", str(hq.db), "--out", str(carried))
        assert made.returncode == 0, made.stderr
        push_registrations(hq.url, hq.tokens["R"], "R", seq, 3, start=2_000)  # after it
        db = tmp_path / "M.db"
        done = cli("agent", "bootstrap", "--db", str(db), "--from", str(carried),
                   "--outlet", "M")
        assert done.returncode == 0, done.stderr
        m = ModemOutlet(db, "M", rig.sim.outlet_paths()[0], token)
        rig.others.append(m)
        m.start()
        said = m.synced()
        pulled = int(re.search(r"pulled (\d+)", said).group(1))  # type: ignore[union-attr]
        assert pulled == 3, said  # the three customers made after the snapshot, no more
        m.stop()
        assert as_hq_sees_it(replica_state(db)) == hq_state(hq.db)
    except BaseException:
        print(rig.logs())
        raise
    finally:
        rig.close()
