"""Customer profile fields are declared once for input (`schema.api.ProfileIn`), and the
stored shape (`schema.events.Profile`, lenient: HQ never refuses a fact already made) can
hold everything any input sets."""

from __future__ import annotations

import base64

import pytest
from pydantic import BaseModel, ValidationError

from schema.adminapi import AdminProfileIn
from schema.api import CustomerIn, CustomerPatch, ProfileIn
from schema.events import Profile

INPUTS = (CustomerIn, CustomerPatch, AdminProfileIn)


def constraints(model: type[BaseModel], name: str) -> list[str]:
    return sorted(repr(m) for m in model.model_fields[name].metadata)


@pytest.mark.parametrize("model", INPUTS, ids=lambda m: m.__name__)
def test_every_profile_input_is_built_on_profile_in_with_its_checks(
        model: type[BaseModel]) -> None:
    assert issubclass(model, ProfileIn)
    for name in ProfileIn.model_fields:
        assert constraints(model, name) == constraints(ProfileIn, name), f"{model}.{name}"


@pytest.mark.parametrize("model", INPUTS, ids=lambda m: m.__name__)
def test_the_stored_profile_has_every_field_an_input_sets(model: type[BaseModel]) -> None:
    taken = set(model.model_fields) - {"pin"}  # a PIN travels as its own fact (PinSet)
    assert taken <= set(Profile.model_fields), taken - set(Profile.model_fields)


def test_fields_only_hq_and_registration_set_are_checked_alike() -> None:
    shared = (set(CustomerIn.model_fields) & set(AdminProfileIn.model_fields)) - \
        set(ProfileIn.model_fields)
    assert shared == {"kind", "code", "category", "promo_category", "approved_actions"}
    for name in shared:
        assert constraints(CustomerIn, name) == constraints(AdminProfileIn, name), name


@pytest.mark.parametrize("model", INPUTS, ids=lambda m: m.__name__)
@pytest.mark.parametrize("changes, where", [
    ({"email": "ana(at)example.com"}, "email"),
    ({"picture": "@@not base64@@"}, "picture"),
    ({"picture": "abc"}, "picture"),
    ({"date_of_birth": "1850-01-01"}, "date_of_birth"),
])
def test_a_bad_profile_field_is_refused_by_every_input(
        model: type[BaseModel], changes: dict[str, str], where: str) -> None:
    person = {"kind": "person"} if "kind" in model.model_fields else {}
    with pytest.raises(ValidationError) as refused:
        model.model_validate({**person, "given_name": "A", "surname": "B", **changes})
    assert [e["loc"] for e in refused.value.errors()] == [(where,)]


def test_a_base64_picture_passes_the_profile_check() -> None:
    picture = base64.b64encode(b"\x89PNG not checked here").decode()
    assert CustomerPatch(picture=picture).picture == picture


def test_the_stored_profile_stays_lenient() -> None:
    # a fact already made (an older outlet, an e-mail typed before the check) is kept
    assert Profile(email="ana(at)example.com").email == "ana(at)example.com"
