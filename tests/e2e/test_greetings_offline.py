"""End to end: greetings and announcements replicate to an outlet and turn at the outlet's
local midnight with HQ down (issue 13, item 1; docs/greetings.md).

HQ and an outlet agent run as real processes. The outlet runs in Kathmandu's time zone
(`TZ`, UTC+5:45, so its local date is neither UTC's nor the test machine's) and, once it
has everything from HQ, HQ is killed and the outlet restarted with its clock set (the
TEST-ONLY `LOYALTY_TEST_CLOCK_SKEW_S`, schema/events.py) a few seconds before local
midnight of a customer's birthday in 2031. Before midnight the till shows the evening's
announcement; after it, the birthday greeting, the day's announcement (printed on the sale
receipt, in the customer's language) and no longer the evening's - all from the outlet's
replica, with nobody to ask.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from typing import Any
from zoneinfo import ZoneInfo

from agentkit import line
from chainkit import ChainRig, OutletProcess, cli, until
from testkit import read_only

ZONE = "Asia/Kathmandu"
BIRTHDAY = date(2031, 3, 10)
EVE = BIRTHDAY - timedelta(days=1)


def announce(rig: ChainRig, *args: str) -> None:
    done = cli("hq", "announce", "--db", str(rig.hq.db), *args)
    assert done.returncode == 0, done.stderr


def replicated(agent: OutletProcess) -> set[str]:
    with read_only(agent.db) as conn:
        return {r[0] for r in conn.execute(
            "SELECT key FROM master WHERE kind = 'announcement'")}


def greeted(agent: OutletProcess, card: str) -> dict[str, Any]:
    answer = agent.till.ok("POST", "/v1/identify", json={"kind": "card", "value": card})
    kinds = [g["kind"] for g in answer["greetings"]]
    shown = [g["announcement_id"] for g in answer["greetings"] if g["kind"] == "announcement"]
    texts = {g["kind"]: g["text"] for g in answer["greetings"] if g["kind"] != "announcement"}
    return {"kinds": kinds, "announcements": shown, "texts": texts}


def restart_before_midnight(agent: OutletProcess) -> float:
    """Restarts the outlet with its clock set so that its local midnight starting BIRTHDAY
    comes a few seconds after it answers; returns that moment (time.time()). A machine too
    slow to start it in time gets more seconds."""
    midnight = datetime.combine(BIRTHDAY, clock(0), tzinfo=ZoneInfo(ZONE)).astimezone(UTC)
    for margin in (10.0, 20.0, 40.0):
        agent.kill()
        target = time.time() + margin
        agent.env["LOYALTY_TEST_CLOCK_SKEW_S"] = str(midnight.timestamp() - target)
        agent.start()
        if time.time() < target - 4.0:
            return target
    raise AssertionError("the outlet did not start in 40 s")


def test_announcements_replicate_and_greetings_turn_at_local_midnight_offline(
        rig: ChainRig) -> None:
    rig.register("KTM")
    _ = rig.hq.admin_token
    rig.hq.start()
    announce(rig, "--text", "The spring sale ends tonight", "--from", EVE.isoformat(),
             "--to", EVE.isoformat(), "--id", "EVE")
    announce(rig, "--text", "Double points all week", "--text-in", "sl",
             "Ves teden dvojne točke", "--from", BIRTHDAY.isoformat(),
             "--to", (BIRTHDAY + timedelta(days=6)).isoformat(), "--receipt", "--id", "WEEK")
    agent = rig.outlet("KTM", start=False)
    agent.env["TZ"] = ZONE
    agent.start()
    until(agent.met_hq, 20, what="the outlet meets HQ")
    mojca = agent.till.register(given_name="Mojca", surname="Kranjc", category="D",
                                language="sl", date_of_birth=f"1990-{BIRTHDAY:%m-%d}")
    card = mojca["card_number"]
    assert greeted(agent, card)["kinds"][0] == "welcome"  # her first visit: today, 2026
    rig.settled()
    announce(rig, "--customer", card, "--text", "Your order has arrived", "--text-in", "sl",
             "Vaše naročilo je prispelo", "--from", EVE.isoformat(),
             "--to", BIRTHDAY.isoformat(), "--id", "PARCEL")
    until(lambda: replicated(agent) == {"EVE", "WEEK", "PARCEL"}, 20,
          what="the announcements reach the outlet")

    rig.hq.kill()  # offline from here on
    midnight = restart_before_midnight(agent)

    before = greeted(agent, card)
    assert time.time() < midnight, "asked after midnight: the machine is too slow"
    assert before["announcements"] == ["PARCEL", "EVE"]
    assert "birthday" not in before["kinds"] and "welcome" not in before["kinds"]

    time.sleep(max(0.0, midnight - time.time()) + 1.0)
    after = greeted(agent, card)
    assert after["kinds"][0] == "birthday"
    assert after["texts"]["birthday"] == "Vse najboljše za rojstni dan, Mojca!"
    assert after["announcements"] == ["PARCEL", "WEEK"]  # the evening's has expired

    receipt = agent.till.sold(card, [line("TEA", 350)])["receipt_lines"]
    assert receipt[-2:] == ["", "Ves teden dvojne točke"]
    status = agent.status()
    assert status["pending_events"] > 0 and status["last_sale_at"].startswith("2031-03-09T")
