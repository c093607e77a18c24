"""One registry per layer for the event types (schema/events.py `EVENT_TYPES`, HQ's
hq/projection.py `HQ`, the outlet's agent/overlay.py `OUTLET`): every type the wire
accepts is declared in each, and the derived tables (`BODIES`, `TYPE_OF`,
`CURRENT_VERSION`) say exactly what the registry says.

Adding an event type is one entry in each registry (hq/projection.py's docstring has the
recipe); the first test names the layer that still lacks it."""

from __future__ import annotations

from agent.overlay import OUTLET
from hq.projection import HQ
from schema.events import BODIES, CURRENT_VERSION, EVENT_TYPE, EVENT_TYPES, TYPE_OF


def test_every_event_type_is_registered_in_every_layer() -> None:
    wire = {name for name, _version in BODIES}
    layers = {"schema.events.EVENT_TYPES": set(EVENT_TYPE), "hq.projection.HQ": set(HQ),
              "agent.overlay.OUTLET": set(OUTLET)}
    missing = {layer: sorted(wire - names) for layer, names in layers.items() if wire - names}
    unknown = {layer: sorted(names - wire) for layer, names in layers.items() if names - wire}
    assert not missing, f"event types without an entry: {missing}"
    assert not unknown, f"entries for event types the wire does not accept: {unknown}"


def test_each_layers_entry_takes_the_body_its_type_declares() -> None:
    for name, entry in HQ.items():
        assert entry.body in EVENT_TYPE[name].versions.values(), name
    for name, outlet_entry in OUTLET.items():
        assert outlet_entry.body in EVENT_TYPE[name].versions.values(), name


def test_the_wire_tables_are_derived_from_the_registry() -> None:
    names = [t.name for t in EVENT_TYPES]
    assert len(names) == len(set(names)), "an event type name is declared twice"
    assert BODIES == {(t.name, v): cls for t in EVENT_TYPES for v, cls in t.versions.items()}
    assert CURRENT_VERSION == {t.name: max(t.versions) for t in EVENT_TYPES}
    for t in EVENT_TYPES:
        assert t.versions and min(t.versions) >= 1, t.name
        for cls in t.versions.values():
            assert TYPE_OF[cls] == t.name, f"{cls.__name__} is the body of two types"
    assert len(TYPE_OF) == len(BODIES), "one body model serves two (type, version) pairs"
