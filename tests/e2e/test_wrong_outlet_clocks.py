"""End to end: outlets whose clocks say 2031 and 2001 (issue 9, item 2).

HQ and two outlet agents run as real processes; each agent's clock is set years off with
the TEST-ONLY `LOYALTY_TEST_CLOCK_SKEW_S` (schema/events.py), so its facts, hellos and
pushes carry that clock exactly as a misconfigured outlet's would. A credit sale at each
must be on this month's invoice close with today's date, in today's turnover, with a sane
"last purchase"; HQ flags each outlet once; `loyalty status` tells the store manager.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from agentkit import line
from chainkit import ChainRig, OutletProcess, cli, hq_ledger_check, until

AHEAD = timedelta(days=5 * 365 + 1)  # the clock says 2031
BEHIND = -timedelta(days=26 * 365)  # the clock says 2000/2001


def skewed_outlet(rig: ChainRig, outlet_id: str, skew: timedelta) -> OutletProcess:
    agent = rig.outlet(outlet_id, start=False)
    agent.env["LOYALTY_TEST_CLOCK_SKEW_S"] = str(skew.total_seconds())
    agent.start()
    until(lambda: len(agent.till.get("/v1/gifts").json()) > 0, 20,
          what=f"{outlet_id} has HQ's master data")
    return agent


def status_of(agent: OutletProcess) -> tuple[dict[str, object], str]:
    as_json = cli("status", "--db", str(agent.db), "--json")
    text = cli("status", "--db", str(agent.db))
    assert as_json.returncode == 0 and text.returncode == 0, as_json.stderr + text.stderr
    return json.loads(as_json.stdout), text.stdout


def test_outlets_with_clocks_in_2031_and_2001_are_billed_this_month_and_told(
        rig: ChainRig) -> None:
    rig.register("FUT", "OLD")
    _ = rig.hq.admin_token
    rig.hq.start()
    today = datetime.now(UTC).date()
    sold = {}
    for outlet_id, skew in (("FUT", AHEAD), ("OLD", BEHIND)):
        agent = skewed_outlet(rig, outlet_id, skew)
        who = agent.till.register("A")
        sale = agent.till.sold(who["card_number"], [line("OIL", 4_200, name="Olive oil")],
                               mode="credit")
        stamp = str(agent.status()["last_sale_at"])  # by the outlet's own clock
        assert stamp[:4] in ("2031", "2032", "2000", "2001"), stamp
        sold[outlet_id] = (who["customer_id"], sale["total_net"])
    rig.settled()

    fut, old = status_of(rig.outlets["FUT"]), status_of(rig.outlets["OLD"])
    assert float(fut[0]["clock_offset_s"]) > 4 * 365 * 86400  # type: ignore[arg-type]
    assert float(old[0]["clock_offset_s"]) < -25 * 365 * 86400  # type: ignore[arg-type]
    clock_fut = next(ln for ln in fut[1].splitlines() if ln.startswith("Clock"))
    clock_old = next(ln for ln in old[1].splitlines() if ln.startswith("Clock"))
    assert "years ahead of HQ" in clock_fut and "set this outlet's clock" in clock_fut
    assert "years behind HQ" in clock_old

    first = today.replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    made = rig.hq.admin("POST", "/v1/admin/invoices/close", 201, json={
        "period_from": first.isoformat(), "period_to": following.isoformat(),
        "issued_on": following.isoformat()})
    for outlet_id, (customer_id, net) in sold.items():
        mine = [m for m in made if m["customer_id"] == customer_id]
        assert [m["amount"] for m in mine] == [net], (outlet_id, made)
        items = rig.hq.admin("GET", f"/v1/admin/invoices/{mine[0]['number']}")["items"]
        assert [i["at"][:10] for i in items] == [today.isoformat()], outlet_id
        stats = rig.hq.customer(customer_id)["statistics"]
        assert stats["last_purchase_at"][:10] == today.isoformat(), outlet_id

    report = cli("report", "turnover", "--db", str(rig.hq.db), "--from", today.isoformat(),
                 "--to", today.isoformat(), "--format", "csv")
    assert report.returncode == 0, report.stderr
    rows = report.stdout.strip().splitlines()
    by_outlet = {r.split(",")[0]: r.split(",") for r in rows[1:]}
    net_column = rows[0].split(",").index("net")
    for outlet_id, (_, net) in sold.items():
        assert int(by_outlet[outlet_id][net_column]) == net

    flags = [f for f in rig.hq.admin("GET", "/v1/admin/flags") if f["event_id"] is None]
    assert sorted(f["outlet_id"] for f in flags) == ["FUT", "OLD"]  # one each
    outlets = {o["outlet_id"]: o for o in rig.hq.admin("GET", "/v1/admin/outlets")}
    assert outlets["FUT"]["clock_offset_s"] > 4 * 365 * 86400
    assert outlets["OLD"]["clock_offset_s"] < -25 * 365 * 86400
    hq_ledger_check(rig.hq.db, {o: a.db for o, a in rig.outlets.items()})
