"""A push request parsed ONCE from its JSON: envelopes and typed bodies together.

`PushRequest` (schema.sync) keeps each event's body as a dict and `Event.parsed()`
validates it again; at HQ's ingest rate that double parse was a third of the CPU. Here the
events are a union discriminated by `type` (then `version` for types with several), so
pydantic-core builds the typed body straight from the bytes. The envelope fields carry the
same constraints as `schema.events.Event`.

Promises: whatever `parse` accepts, `PushRequest.model_validate_json` accepts too and every
body parses with `Event.parsed()` to an equal model; anything else (an unknown type or
version, a bad body, a malformed envelope) raises ValueError and the caller falls back to
the reference path for its exact refusal. `stored_json` is the event as received (the
fields the outlet sent, nothing re-defaulted), readable by `Event.model_validate_json`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal, Union, cast

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, create_model

from schema.events import BODIES, Body
from schema.sync import MAX_BATCH, PROTOCOL


class TypedEvent(BaseModel):
    """`schema.events.Event` with its body already typed (one subclass per type/version)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: str = Field(min_length=36, max_length=36)
    outlet_id: str = Field(min_length=1, max_length=40)
    seq: int = Field(ge=1, le=2**63 - 1)
    type: str
    version: int = Field(ge=1)
    at: str
    customer_id: str | None = None
    body: Body

    def stored_json(self) -> str:
        """The event as received, for the ledger (`events.event`)."""
        return self.model_dump_json(exclude_unset=True)


def _variants() -> Any:
    by_type: dict[str, list[type[TypedEvent]]] = {}
    for (name, version), cls in BODIES.items():
        literal = cast(Any, Literal)
        model = create_model(
            f"TypedEvent_{name.replace('.', '_')}_v{version}",
            __base__=TypedEvent,
            type=(literal[name], ...),
            version=(literal[version], ...),
            body=(cls, ...),
        )
        by_type.setdefault(name, []).append(model)
    members: list[Any] = []
    for models in by_type.values():
        if len(models) == 1:
            members.append(models[0])
        else:
            members.append(Annotated[Union[tuple(models)], Field(discriminator="version")])  # noqa: UP007
    return Annotated[Union[tuple(members)], Field(discriminator="type")]  # noqa: UP007


if TYPE_CHECKING:
    AnyTypedEvent = TypedEvent
else:
    AnyTypedEvent = _variants()


class TypedPushRequest(BaseModel):
    """`schema.sync.PushRequest` with typed events."""

    model_config = ConfigDict(extra="forbid")

    protocol: int = PROTOCOL
    outlet_id: str = Field(min_length=1, max_length=40)
    events: list[AnyTypedEvent] = Field(max_length=MAX_BATCH)
    sent_at: str | None = Field(None, max_length=40)


_ADAPTER = TypeAdapter(TypedPushRequest)


def parse(raw: bytes | str) -> TypedPushRequest:
    """The request, typed, from its JSON; ValueError (a pydantic ValidationError) if not."""
    return _ADAPTER.validate_json(raw)
