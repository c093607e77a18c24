"""Who may call what at HQ, and how tokens are kept (invariant 8).

HQ answers in this process (tests/hq/conftest.py `hq`); the tests parametrized with TIERS
run again against a real `loyalty hq serve` (the slow tier). `loyalty hq ...` runs in
process (CliRunner) against HQ's file, as an operator's command beside the server would.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from agentkit import expect_error
from hqkit import HQ_TIERS, AnyHQ, HQClient, registered, snapshot
from testkit.inprocess import TIERS, cli, cli_last_line

from schema.events import make_event

HQ_ON_BOTH_STORES = True  # the tests using `hq` also against HQ on PostgreSQL

SYNC = [("GET", "/v1/sync/hello"), ("GET", "/v1/sync/pull"), ("POST", "/v1/sync/push")]
ADMIN = [("GET", "/v1/admin/flags"), ("GET", "/v1/admin/outlets"),
         ("POST", "/v1/admin/customers/someone/ban"), ("GET", "/v1/admin/customers/someone"),
         ("PUT", "/v1/admin/master/category"),
         ("POST", "/v1/admin/identifiers/status")]


def call(hq: AnyHQ, method: str, path: str, token: str | None,
         header: str | None = None) -> Any:
    headers = {}
    if header is not None:
        headers["Authorization"] = header
    elif token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return hq.session().request(method, hq.url + path, headers=headers, json={}, timeout=10)


@pytest.mark.parametrize("hq", HQ_TIERS, indirect=True)
def test_no_or_unknown_token_is_401(hq: AnyHQ) -> None:
    before = snapshot(hq)
    fake = "lo_" + "0" * 48
    for method, path in SYNC + ADMIN:
        expect_error(call(hq, method, path, None), 401, "unauthorized")
        expect_error(call(hq, method, path, fake), 401, "unauthorized")
        expect_error(call(hq, method, path, None, header=f"Basic {fake}"), 401, "unauthorized")
        expect_error(call(hq, method, path, None, header="Bearer "), 401, "unauthorized")
    assert snapshot(hq) == before


def test_an_outlet_token_cannot_use_admin_endpoints(hq: AnyHQ) -> None:
    before = snapshot(hq)
    for method, path in ADMIN:
        expect_error(call(hq, method, path, hq.tokens["A"]), 403, "forbidden")
    assert snapshot(hq) == before


def test_an_admin_token_cannot_speak_for_an_outlet(hq: AnyHQ) -> None:
    before = snapshot(hq)
    for method, path in SYNC:
        expect_error(call(hq, method, path, hq.admin_token), 403, "forbidden")
    assert snapshot(hq) == before


def test_an_outlet_token_speaks_for_its_own_outlet_only(outlet_a: HQClient,
                                                         outlet_b: HQClient) -> None:
    assert outlet_a.hello()["outlet_id"] == "A"
    assert outlet_b.hello()["outlet_id"] == "B"
    assert outlet_a.hello()["card_range"] != outlet_b.hello()["card_range"]


def test_pull_shows_outlets_no_secrets_stock_or_flags(outlet_a: HQClient,
                                                      hq: AnyHQ) -> None:
    outlet_a.pushed(outlet_a.events(registered()))
    page = outlet_a.pull(0, limit=5000)
    assert page.status_code == 200, page.text
    kinds = {c["kind"] for c in page.json()["changes"]}
    assert kinds <= {"customer", "category", "promo_category", "action", "division_promo",
                     "gift"}, kinds
    text = page.text
    for token in (*hq.tokens.values(), hq.admin_token):
        assert token not in text
    assert "token_hash" not in text  # (pin hashes travel: a PIN set at A is checked at B)
    expect_error(outlet_a.pull(-1), 422, "invalid_request")
    expect_error(outlet_a.pull(0, limit=0), 422, "invalid_request")
    expect_error(outlet_a.pull(0, wait=3600), 422, "invalid_request")


@pytest.mark.parametrize("hq", TIERS, indirect=True)
def test_tokens_are_stored_only_hashed_and_never_start_with_a_dash(hq: AnyHQ,
                                                                    tmp_path: Path) -> None:
    tokens = [*hq.tokens.values(), hq.admin_token]
    extra_outlet = cli("hq", "outlet-add", "--db", str(hq.db), "C9")
    assert extra_outlet.returncode == 0, extra_outlet.stderr
    tokens.append(extra_outlet.stdout.strip().splitlines()[-1])
    tokens.append(cli_last_line("hq", "admin-token", "--db", str(hq.db), "--label", "ops"))
    for token in tokens:
        assert not token.startswith("-")
        assert re.fullmatch(r"l[oa]_[0-9a-f]{48}", token), token
    assert len(set(tokens)) == len(tokens)
    blob = b"".join(p.read_bytes() for p in hq.db.parent.glob(hq.db.name + "*")
                    if not p.name.endswith("stderr"))
    for token in tokens:
        assert token.encode() not in blob, "a token is stored in clear in HQ's files"
        assert token.split("_", 1)[1].encode() not in blob
    assert "lo_" not in hq.stderr() and "la_" not in hq.stderr()
    # the new outlet's token works at once against the running HQ
    client = HQClient(hq, "C9", tokens[-2])
    assert client.hello()["outlet_id"] == "C9"
    # registering the same outlet twice is refused
    again = cli("hq", "outlet-add", "--db", str(hq.db), "C9")
    assert again.returncode != 0
    assert cli("hq", "outlet-add", "--db", str(hq.db), "-bad").returncode != 0


def test_a_token_that_is_not_bearer_shaped_is_refused_before_any_push(
        outlet_a: HQClient, hq: AnyHQ) -> None:
    who = registered()
    event = make_event("A", outlet_a.next_seq(), who)
    before = snapshot(hq)
    answer = hq.session().post(hq.url + "/v1/sync/push", timeout=10,
                               headers={"Authorization": hq.tokens["A"]},
                               json={"outlet_id": "A", "events": [event.model_dump(mode="json")]})
    expect_error(answer, 401, "unauthorized")
    assert snapshot(hq) == before
