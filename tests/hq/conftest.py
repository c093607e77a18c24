"""Fixtures of the HQ tests: one real `loyalty hq serve` process per module.

`hq`: HQ with outlets A and B registered through `loyalty hq outlet-add` (their tokens in
`hq.tokens`) and an admin token; its stderr is attached to the report of a failing test.
`outlet_a` / `outlet_b`: `HQClient`s that push hand-made events as that outlet.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from chainkit import HQProcess
from hqkit import HQClient


@pytest.fixture(scope="module")
def hq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HQProcess]:
    process = HQProcess(tmp_path_factory.mktemp("hq") / "hq.db")
    for outlet_id in ("A", "B"):
        process.outlet_add(outlet_id)
    _ = process.admin_token
    process.start()
    yield process
    process.kill()


@pytest.fixture
def outlet_a(hq: HQProcess) -> HQClient:
    return HQClient(hq, "A", hq.tokens["A"])


@pytest.fixture
def outlet_b(hq: HQProcess) -> HQClient:
    return HQClient(hq, "B", hq.tokens["B"])
