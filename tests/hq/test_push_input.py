"""Bad input at HQ's push: a clear error and NOTHING applied (invariants 2, 5, 8, 9).

One HQ per module (tests/hq/conftest.py `hq`: in this process; the tests parametrized with
HQ_TIERS run again against a real `loyalty hq serve`, the slow tier; every test runs on
HQ's SQLite file and again on PostgreSQL, `HQ_ON_BOTH_STORES`); each test pushes
hand-made events as outlet A or B and compares HQ's file before and after. Facts that merely look wrong are applied and flagged,
never refused (invariant 5).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from agentkit import expect_error
from hqkit import HQ_TIERS, AnyHQ, HQClient, redeemed, registered, sale, snapshot

from schema.events import IdentifierStatusChanged, make_event
from schema.sync import MAX_BATCH

HQ_ON_BOTH_STORES = True  # every test also against HQ on PostgreSQL (tests/hq/conftest.py)


def refused(client: HQClient, answer: Any, status: int, code: str,
            before: dict[str, Any]) -> dict[str, Any]:
    error = expect_error(answer, status, code)
    assert snapshot(client.hq) == before, "a refused push changed HQ"
    return error


# --- a good batch, duplicates, flags ------------------------------------------------------
@pytest.mark.parametrize("hq", HQ_TIERS, indirect=True)
def test_push_applies_a_batch_and_a_repush_is_all_duplicates(outlet_a: HQClient,
                                                             hq: AnyHQ) -> None:
    who = registered()
    events = outlet_a.events(who, sale(who.customer_id, 10_000, 200),
                             sale(who.customer_id, 5_000, 100))
    before = snapshot(hq)
    answer = outlet_a.pushed(events)
    assert answer["acked_through"] == events[-1].seq
    assert [r["result"] for r in answer["results"]] == ["applied"] * 3
    assert [r["event_id"] for r in answer["results"]] == [e.event_id for e in events]
    assert hq.customer(who.customer_id)["points_balance"] == 300
    after = snapshot(hq)
    assert after["events"] == before["events"] + 3

    again = outlet_a.pushed(events)                   # at-least-once delivery: same batch
    assert again["acked_through"] == events[-1].seq
    assert [r["result"] for r in again["results"]] == ["duplicate"] * 3
    assert snapshot(hq)["events"] == after["events"]
    assert hq.customer(who.customer_id)["points_balance"] == 300
    # a batch overlapping what HQ has: the old ones duplicate, the new one applied
    more = make_event("A", events[-1].seq + 1, sale(who.customer_id, 1_000, 20))
    mixed = outlet_a.pushed([events[-1], more])
    assert [r["result"] for r in mixed["results"]] == ["duplicate", "applied"]
    assert hq.customer(who.customer_id)["points_balance"] == 320


def test_a_sale_for_an_unknown_customer_is_applied_and_flagged(outlet_a: HQClient,
                                                             hq: AnyHQ) -> None:
    ghost = "01900000-0000-7000-8000-00000000dead"
    before = snapshot(hq)
    answer = outlet_a.pushed(outlet_a.events(sale(ghost, 10_000, 200)))
    assert answer["results"][0]["result"] == "flagged"
    assert answer["results"][0]["reason"] == "unknown customer"
    after = snapshot(hq)
    assert after["events"] == before["events"] + 1 and after["flags"] == before["flags"] + 1
    flags = hq.admin("GET", "/v1/admin/flags")
    assert any(f["customer_id"] == ghost and f["reason"] == "unknown customer" for f in flags)


def test_overspent_points_are_applied_and_flagged_not_refused(outlet_a: HQClient,
                                                              outlet_b: HQClient,
                                                              hq: AnyHQ) -> None:
    who = registered()
    outlet_a.pushed(outlet_a.events(who, sale(who.customer_id, 50_000, 1_000)))
    # both outlets spent the same 800 points offline
    first = outlet_a.pushed(outlet_a.events(redeemed(who.customer_id, 800)))
    assert first["results"][0]["result"] == "applied"
    second = outlet_b.pushed(outlet_b.events(redeemed(who.customer_id, 800)))
    assert second["results"][0]["result"] == "flagged"
    assert "overspent" in second["results"][0]["reason"]
    view = hq.customer(who.customer_id)
    assert view["points_balance"] == -600
    assert any("overspent" in f["reason"] for f in view["flags"])


# --- refusals: nothing applied ------------------------------------------------------------
def test_malformed_json_is_refused(outlet_a: HQClient, hq: AnyHQ) -> None:
    before = snapshot(hq)
    for raw in (b"{not json", b"[]", b'{"protocol": 1}', b"", b'{"outlet_id": "A", "events": 3}'):
        error = refused(outlet_a, outlet_a.push_raw(data=raw), 422, "protocol_error", before)
        assert error["message"].startswith("malformed push batch"), error


@pytest.mark.parametrize("hq", HQ_TIERS, indirect=True)
def test_an_oversized_batch_is_refused_with_413(outlet_a: HQClient, hq: AnyHQ) -> None:
    before = snapshot(hq)
    who = registered()
    payload = {"protocol": 1, "outlet_id": "A",
               "events": [make_event("A", outlet_a.next_seq(), who).model_dump(mode="json")],
               "padding": "x" * (8 * 1024 * 1024 + 1)}
    refused(outlet_a, outlet_a.push_raw(data=json.dumps(payload).encode()), 413,
            "payload_too_large", before)


def test_more_than_max_batch_events_is_refused(outlet_a: HQClient, hq: AnyHQ) -> None:
    who = registered()
    first = outlet_a.next_seq()
    events = [make_event("A", first, who)]
    events += [make_event("A", first + i, sale(who.customer_id)) for i in range(1, MAX_BATCH + 1)]
    assert len(events) == MAX_BATCH + 1
    before = snapshot(hq)
    refused(outlet_a, outlet_a.push(events), 422, "protocol_error", before)
    ok = outlet_a.pushed(events[:MAX_BATCH])            # exactly MAX_BATCH is fine
    assert ok["acked_through"] == events[MAX_BATCH - 1].seq


@pytest.mark.parametrize("type_, version", [("sale.recorded", 99), ("sale.teleported", 1)])
def test_an_unknown_event_type_or_version_refuses_the_whole_batch(
        outlet_a: HQClient, hq: AnyHQ, type_: str, version: int) -> None:
    who = registered()
    good, other = outlet_a.events(who, sale(who.customer_id))
    odd = other.model_copy(update={"type": type_, "version": version})
    before = snapshot(hq)
    error = refused(outlet_a, outlet_a.push([good, odd]), 422, "protocol_error", before)
    assert type_ in error["message"] and str(version) in error["message"]


def test_an_unsupported_protocol_version_is_refused(outlet_a: HQClient, hq: AnyHQ) -> None:
    who = registered()
    before = snapshot(hq)
    error = refused(outlet_a, outlet_a.push(outlet_a.events(who), protocol=99), 422,
                    "protocol_error", before)
    assert "99" in error["message"]


def test_a_body_that_fails_validation_is_refused(outlet_a: HQClient, hq: AnyHQ) -> None:
    who = registered()
    good, bad = outlet_a.events(who, sale(who.customer_id))
    broken = bad.model_copy(update={"body": {**bad.body, "total_net": "lots"}})
    extra = bad.model_copy(update={"body": {**bad.body, "sneaky": 1}})
    before = snapshot(hq)
    for odd in (broken, extra):
        refused(outlet_a, outlet_a.push([good, odd]), 422, "protocol_error", before)
    envelope = good.model_dump(mode="json")
    envelope["seq"] = 0                                  # the envelope itself is checked too
    refused(outlet_a, outlet_a.push_raw({"outlet_id": "A", "events": [envelope]}), 422,
            "protocol_error", before)


def test_events_claiming_another_outlet_are_refused(outlet_a: HQClient, hq: AnyHQ) -> None:
    who = registered()
    good = outlet_a.event(who)
    forged = make_event("B", good.seq + 1, sale(who.customer_id))
    before = snapshot(hq)
    error = refused(outlet_a, outlet_a.push([good, forged]), 403, "outlet_mismatch", before)
    assert "claims outlet B" in error["message"]


def test_a_batch_for_another_outlet_than_the_token_is_refused(outlet_a: HQClient,
                                                              hq: AnyHQ) -> None:
    forged = make_event("B", 1, registered())
    before = snapshot(hq)
    refused(outlet_a, outlet_a.push([forged], outlet_id="B"), 403, "outlet_mismatch", before)
    # and with the batch's outlet right but the events' wrong
    refused(outlet_a, outlet_a.push([forged], outlet_id="A"), 403, "outlet_mismatch", before)


def test_a_gap_in_the_sequence_is_refused_with_sync_gap(outlet_a: HQClient,
                                                        hq: AnyHQ) -> None:
    expected = outlet_a.next_seq()
    ahead = make_event("A", expected + 1, registered())
    before = snapshot(hq)
    error = expect_error(outlet_a.push([ahead]), 409, "sync_gap")
    assert str(expected) in error["message"]
    assert snapshot(hq) == before


def test_a_gap_inside_a_batch_stops_it_there(outlet_a: HQClient, hq: AnyHQ) -> None:
    who = registered()
    first = outlet_a.next_seq()
    events = [make_event("A", first, who), make_event("A", first + 1, sale(who.customer_id)),
              make_event("A", first + 3, sale(who.customer_id))]
    answer = outlet_a.pushed(events)
    assert answer["acked_through"] == first + 1        # resend from first + 2
    assert len(answer["results"]) == 2
    assert hq.customer(who.customer_id)["points_balance"] == 200


def test_a_reused_sequence_with_another_event_id_is_refused(outlet_a: HQClient,
                                                           hq: AnyHQ) -> None:
    who = registered()
    original = outlet_a.event(who)
    outlet_a.pushed([original])
    impostor = make_event("A", original.seq, sale(who.customer_id))
    new = make_event("A", original.seq + 1, sale(who.customer_id))
    before = snapshot(hq)
    refused(outlet_a, outlet_a.push([impostor, new]), 409, "seq_reused", before)


def test_an_event_id_used_twice_is_refused(outlet_a: HQClient, hq: AnyHQ) -> None:
    who = registered()
    original = outlet_a.event(who)
    outlet_a.pushed([original])
    copy = make_event("A", original.seq + 1, sale(who.customer_id))
    copy = copy.model_copy(update={"event_id": original.event_id})
    before = snapshot(hq)
    refused(outlet_a, outlet_a.push([copy]), 422, "protocol_error", before)


def test_events_out_of_order_are_refused(outlet_a: HQClient, hq: AnyHQ) -> None:
    who = registered()
    one, two = outlet_a.events(who, sale(who.customer_id))
    before = snapshot(hq)
    refused(outlet_a, outlet_a.push([two, one]), 422, "protocol_error", before)
    refused(outlet_a, outlet_a.push([one, one]), 422, "protocol_error", before)


def test_an_outlet_cannot_change_a_customer_status(outlet_a: HQClient, hq: AnyHQ) -> None:
    """Bans are HQ's: the fact is kept but flagged and has no effect."""
    who = registered()
    outlet_a.pushed(outlet_a.events(who))
    from schema.events import CustomerStatusChanged

    answer = outlet_a.pushed(outlet_a.events(
        CustomerStatusChanged(customer_id=who.customer_id, status="banned")))
    assert answer["results"][0]["result"] == "flagged"
    assert hq.customer(who.customer_id)["status"] == "approved"
    unknown = outlet_a.pushed(outlet_a.events(
        IdentifierStatusChanged(kind="card", value="no-such-card", status="blocked")))
    assert unknown["results"][0] == {**unknown["results"][0], "result": "flagged",
                                     "reason": "unknown identifier"}


def test_a_pull_cursor_beyond_what_sqlite_holds_is_invalid_request(outlet_a: HQClient,
                                                                   hq: AnyHQ) -> None:
    # found by the schemathesis run (tests/e2e/test_api_fuzz.py): was a 500 OverflowError
    for cursor in (2**63, 1938686803650000017961254912):
        error = expect_error(outlet_a.pull(cursor), 422, "invalid_request")
        assert error["message"].startswith("query.cursor: expected a number at most "), error
    assert outlet_a.pull(2**63 - 1).status_code == 200


def test_numbers_no_sqlite_integer_holds_refuse_the_batch_not_crash_hq(
        outlet_a: HQClient, hq: AnyHQ) -> None:
    # was a 500 OverflowError from the ledger insert: such a fact cannot be stored at all
    who = registered()
    good, bad = outlet_a.events(who, sale(who.customer_id))
    before = snapshot(hq)
    for field in ("total_net", "points_earned"):
        huge = bad.model_copy(update={"body": {**bad.body, field: 2**70}})
        refused(outlet_a, outlet_a.push([good, huge]), 422, "protocol_error", before)
    lines = [{**bad.body["lines"][0], "unit_price": 2**63}]
    huge = bad.model_copy(update={"body": {**bad.body, "lines": lines}})
    refused(outlet_a, outlet_a.push([good, huge]), 422, "protocol_error", before)
    envelope = good.model_dump(mode="json")
    envelope["seq"] = 2**63
    refused(outlet_a, outlet_a.push_raw({"outlet_id": "A", "events": [envelope]}), 422,
            "protocol_error", before)
    assert "Traceback" not in hq.log.read_text(errors="replace")
