"""Head-office changes are facts in the chain-wide ledger (docs/design.md invariant 1), and an
outlet cannot undo what only HQ may decide."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hqkit import STORES

from agent.programme import default_documents
from hq import admin, credentials, ingest
from hq.chain import Chain
from schema.events import (
    CustomerRegistered,
    IdentifierStatusChanged,
    Profile,
    make_event,
)
from schema.sync import PushRequest

CARD = "2900010000015"


@pytest.fixture
def chain(hq_db: str) -> Iterator[Chain]:
    """HQ on the store the test is parametrized with (hqkit.STORES)."""
    the_chain = Chain(hq_db, seed=default_documents())
    with the_chain.db.write() as conn:
        credentials.add_outlet(conn, "X")
    registered = CustomerRegistered(customer_id="c1", card_number=CARD, profile=Profile(
        kind="person", given_name="A", surname="B", category="C"))
    ingest.push(the_chain, "X", PushRequest(outlet_id="X", events=[
        make_event("X", 1, registered)]))
    yield the_chain
    the_chain.close()


@pytest.mark.parametrize("hq_db", STORES, indirect=True)
def test_a_ban_and_an_edit_at_hq_are_facts_with_their_reason(chain: Chain) -> None:
    admin.set_status(chain, "c1", "banned", "fraud reported by outlet X")
    admin.edit_customer(chain, "c1", {"category": "A", "note": "VIP until the ban"})
    rows = chain.db.all("SELECT type, event FROM events WHERE outlet_id = 'HQ' ORDER BY seq")
    assert [r["type"] for r in rows] == ["customer.status_changed", "customer.updated"]
    assert '"fraud reported by outlet X"' in rows[0]["event"]
    view = admin.customer_view(chain, "c1")
    assert (view["status"], view["category"], view["note"]) == ("banned", "A", "VIP until the ban")


@pytest.mark.parametrize("hq_db", STORES, indirect=True)
def test_an_outlet_cannot_make_a_lost_card_active_again(chain: Chain) -> None:
    admin.set_identifier_status(chain, "card", CARD, "lost")
    found = IdentifierStatusChanged(kind="card", value=CARD, status="active", customer_id="c1")
    answer = ingest.push(chain, "X", PushRequest(outlet_id="X", events=[make_event("X", 2, found)]))
    assert answer.results[0].result == "flagged"
    assert chain.db.scalar("SELECT status FROM identifiers WHERE value = ?", (CARD,)) == "lost"
    assert any("active again" in f["reason"] for f in ingest.flags(chain))
