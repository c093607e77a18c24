"""Head office's announcements to customers at the tills (docs/greetings.md).

An announcement is master data (`schema.masterdata.AnnouncementDoc`, kind `announcement`):
stored and validated like every document (`hq.admin.put_master`, which also checks that
the customer or category it names exists), published in the change log, kept by every
outlet, which shows it at identification while its window holds in the outlet's local
date, offline too. `announce` is what `loyalty hq announce` does; the admin API's
`PUT /v1/admin/master/announcement` takes the document itself.

Announcements that have ended are withdrawn by `withdraw_ended` (HQ's daily schedule), so
outlets do not keep them for ever: one whose last day is at least two days behind HQ's
UTC date has ended in every time zone (local dates run from UTC-12 to UTC+14).
Must never: decide per outlet what is shown (that is the outlet's, by its own date).
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

from pydantic import ValidationError

from hq import admin
from hq.audit import Actor
from hq.chain import Chain
from schema.errors import InvalidRequest
from schema.events import new_id
from schema.language import ENGLISH
from schema.masterdata import AnnouncementDoc, GreetingsDoc
from web import httperrors

ENDED_AFTER = timedelta(days=2)


def default_language(chain: Chain) -> str:
    """The chain's default language (the greeting settings' `language`, else English)."""
    data = chain.db.scalar("SELECT data FROM master WHERE kind = 'greetings' AND key = 'chain'")
    if data is None:
        return ENGLISH
    return GreetingsDoc.model_validate_json(data).language


def announce(chain: Chain, texts: dict[str, str], valid_from: date, valid_to: date, *,
             customer: str | None = None, category: str | None = None,
             print_on_receipt: bool = False, announcement_id: str | None = None,
             by: Actor) -> dict[str, Any]:
    """Stores (or, with the id of an existing one, replaces) an announcement; `customer`
    is a customer id or a club card number. Returns the document as stored."""
    doc: dict[str, Any] = {
        "announcement_id": announcement_id or new_id(), "texts": texts,
        "valid_from": valid_from.isoformat(), "valid_to": valid_to.isoformat(),
        "print_on_receipt": print_on_receipt}
    if customer is not None:
        doc["customer_id"] = admin.resolve_customer(chain, customer)
    if category is not None:
        doc["category"] = category
    try:
        key = admin.put_master(chain, "announcement", doc, by=by)
    except ValidationError as exc:  # said as the admin API says it
        raise InvalidRequest(httperrors.validation_message(exc.errors())) from None
    return admin.master_docs(chain, "announcement")[key]


def listing(chain: Chain) -> list[dict[str, Any]]:
    """Every announcement HQ holds, by start, then id."""
    docs = admin.master_docs(chain, "announcement").values()
    return sorted(docs, key=lambda d: (d["valid_from"], d["announcement_id"]))


def withdraw_ended(chain: Chain, today: date) -> list[str]:
    """Withdraws every announcement that has ended everywhere by HQ's UTC date `today`
    (see the module docstring); returns their ids."""
    ended = []
    for doc in listing(chain):
        try:
            last = AnnouncementDoc.model_validate_json(json.dumps(doc)).valid_to
        except ValueError:
            continue  # not ours to judge: stored through the admin API, it was valid then
        if last <= today - ENDED_AFTER:
            admin.delete_master(chain, "announcement", doc["announcement_id"],
                                by=None)  # HQ's scheduler: no member of staff
            ended.append(doc["announcement_id"])
    return ended
