"""The sync protocol's messages (docs/design.md §3): the same on the router and modem links.

Every message carries `protocol`; HQ accepts every version in `ACCEPTED`. Sizes are
bounded so a bad or hostile batch is refused before it is applied.

- hello: who HQ thinks the outlet is, HQ's epoch, what HQ holds of it (`last_seq`) and how
  far its change log goes (`head`); an outlet compares these with what it remembers to
  notice HQ went back in time.
- push: outbox events in local sequence order -> `acked_through` plus a result per event.
- pull: changes after a cursor, compacted (latest version per entity), with the new
  cursor and `incorporated_through` (this outlet's highest local sequence reflected in
  the state sent: drives invariant 4).

Outlet clocks (docs/sync.md, "Outlet clocks"): a hello (`sent_at` query parameter or
modem field) and a push (`PushRequest.sent_at`) carry the outlet's clock; HQ answers with
the offset it measured (`clock_offset_s`, outlet minus HQ) and its tolerance. All optional:
an outlet that sends no `sent_at` gets answers without these fields, exactly as before
(older outlets refuse fields they do not know).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from schema.events import Event

PROTOCOL = 1
ACCEPTED = {1}
MAX_BATCH = 1000
MAX_PAGE = 5000


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")

    protocol: int = PROTOCOL


CLOCK_FIELDS = {"clock_offset_s", "clock_tolerance_s"}  # sent only to outlets that send sent_at


class Hello(Message):
    outlet_id: str
    epoch: str
    last_seq: int
    head: int
    card_range: int
    clock_offset_s: float | None = None
    clock_tolerance_s: float | None = None


class PushRequest(Message):
    outlet_id: str = Field(min_length=1, max_length=40)
    events: list[Event] = Field(max_length=MAX_BATCH)
    sent_at: str | None = Field(None, max_length=40)  # the outlet's clock when it sent this


class EventResult(BaseModel):
    event_id: str
    seq: int
    result: Literal["applied", "duplicate", "flagged"]
    reason: str | None = None


class PushResponse(Message):
    epoch: str
    acked_through: int
    results: list[EventResult]
    clock_offset_s: float | None = None
    clock_tolerance_s: float | None = None


def answer_json(answer: Hello | PushResponse) -> str:
    """An answer as it travels: the clock fields only when HQ measured the outlet's clock
    (an outlet that sent no time may be one that refuses fields it does not know)."""
    return answer.model_dump_json(exclude=_unmeasured(answer))


def answer_data(answer: Hello | PushResponse) -> dict[str, Any]:
    """`answer_json` as a JSON-ready dict (the modem link)."""
    return answer.model_dump(mode="json", exclude=_unmeasured(answer))


def _unmeasured(answer: Hello | PushResponse) -> set[str]:
    return {name for name in CLOCK_FIELDS if getattr(answer, name) is None}


class Change(BaseModel):
    """One entity's latest state; `data` None means the entity was withdrawn."""

    kind: str
    key: str
    seq: int
    data: dict[str, Any] | None


class PullResponse(Message):
    epoch: str
    cursor: int
    head: int
    incorporated_through: int
    more: bool
    changes: list[Change]
