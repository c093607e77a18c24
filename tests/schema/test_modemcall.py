"""The compact push answer on the modem line expands back to exactly the full answer."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from schema.modemcall import compact_push, expand_push

VERDICTS = st.sampled_from([("applied", None), ("duplicate", None),
                            ("flagged", "points overspent: balance below zero")])


@st.composite
def pushes(draw: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    first = draw(st.integers(min_value=1, max_value=10_000))
    sent = [{"event_id": f"e{first + i}", "seq": first + i}
            for i in range(draw(st.integers(min_value=0, max_value=40)))]
    answered = draw(st.integers(min_value=0, max_value=len(sent)))  # a gap stops HQ there
    results = []
    for event in sent[:answered]:
        verdict, reason = draw(VERDICTS)
        results.append({"event_id": event["event_id"], "seq": event["seq"], "result": verdict,
                        "reason": reason})
    acked = sent[answered - 1]["seq"] if answered else first - 1
    full = {"protocol": 1, "epoch": "ep", "acked_through": acked, "results": results}
    if draw(st.booleans()):  # the outlet sent its clock: HQ says what it measured
        full.update(clock_offset_s=draw(st.floats(-1e9, 1e9)), clock_tolerance_s=300.0)
    return full, sent


@given(pushes())
def test_the_compact_push_answer_expands_to_the_full_answer(case: Any) -> None:
    full, sent = case
    assert expand_push(compact_push(full), sent) == full


def test_a_push_of_only_applied_events_carries_no_results_on_the_line() -> None:
    sent = [{"event_id": f"e{i}", "seq": i} for i in range(1, 1001)]
    full = {"protocol": 1, "epoch": "ep", "acked_through": 1000,
            "results": [{"event_id": e["event_id"], "seq": e["seq"], "result": "applied",
                         "reason": None} for e in sent]}
    assert compact_push(full)["exceptions"] == []
