"""A return that takes back points the customer already spent elsewhere (review 11, finding
8; docs/programme.md "Points already spent"): under the `reduce_refund` and `supervisor`
policies an outlet lets a return through only when its view of the balance covers the
points, so a balance HQ sees going below zero means another outlet spent them meanwhile.
HQ applies the return (it never rejects a fact) and flags it for review; under `negative`
(the chain accepts negative balances) or with a supervisor's approval it is simply applied.
In process on a real HQ, the facts pushed through HQ's own ingest."""

from __future__ import annotations

import pytest
from test_ingest_batch import (
    OUTLET,
    SEED_SALES,
    SEEDED,
    TIMES,
    _return,
    new_chain,
    seed_facts,
)

from hq import ingest
from hq.chain import Chain
from schema.events import GiftRedeemed, make_event, new_id
from schema.sync import PushRequest

RICH = SEEDED[1]  # bought 1 x A at 2.00 and earned 50 points (test_ingest_batch.seed_facts)


def push_all(chain: Chain, approved_by: str | None = None) -> list[tuple[str, str | None]]:
    """The seed, then the 50 points spent on a gift, then the sale returned whole (its 50
    points taken back); the verdicts of the last two."""
    spent = GiftRedeemed(redemption_id=new_id(), customer_id=RICH, gift_sku="G1",
                         gift_name="gift", qty=1, points_spent=50)
    back = _return(SEED_SALES[1], RICH, "A", 1, 200, 50, "cash", "return", True)
    if approved_by:
        back = back.model_copy(update={"approved_by": approved_by})
    facts = [*seed_facts(), (spent, TIMES[2]), (back, TIMES[2])]
    events = [make_event(OUTLET, n + 1, body, at) for n, (body, at) in enumerate(facts)]
    answer = ingest.push(chain, OUTLET, PushRequest(outlet_id=OUTLET, events=events))
    return [(r.result, r.reason) for r in answer.results[-2:]]


@pytest.mark.parametrize("policy", ["reduce_refund", "supervisor"])
def test_a_return_taking_back_points_spent_elsewhere_is_applied_and_flagged(policy: str) -> None:
    with new_chain({"returns": {"points_policy": policy, "point_value_per_100": 100}}) as chain:
        spent, back = push_all(chain)
        assert spent == ("applied", None)
        assert back[0] == "flagged"
        assert back[1] is not None and "below zero" in back[1]
        assert chain.db.one("SELECT points_earned - points_used FROM customer_tally "
                            "WHERE customer_id = ?", (RICH,))[0] == -50  # applied all the same
        assert chain.db.one("SELECT COUNT(*) FROM flags WHERE customer_id = ?", (RICH,))[0] == 1


def test_under_the_negative_policy_a_return_below_zero_is_simply_applied() -> None:
    with new_chain({"returns": {"points_policy": "negative"}}) as chain:
        assert push_all(chain)[1] == ("applied", None)


def test_a_return_a_supervisor_approved_below_zero_is_simply_applied() -> None:
    with new_chain({"returns": {"points_policy": "supervisor"}}) as chain:
        assert push_all(chain, approved_by="maja")[1] == ("applied", None)
