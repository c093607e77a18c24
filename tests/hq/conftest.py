"""Fixtures of the HQ tests: HQ in this process, or a real `loyalty hq serve` process.

`hq`: HQ with outlets A and B registered through `loyalty hq outlet-add` (their tokens in
`hq.tokens`) and an admin token, one per module, in this process (hqkit.InProcessHQ: the
app `loyalty hq serve` serves, answered without uvicorn). Parametrized indirectly with
"real process" (`@pytest.mark.parametrize("hq", TIERS, indirect=True)`), it is
`hq_process` instead: the same HQ as a real process, whose stderr is attached to the report
of a failing test (the slow tier).
`outlet_a` / `outlet_b`: `HQClient`s that push hand-made events as that outlet.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from chainkit import HQProcess
from hqkit import AnyHQ, HQClient, InProcessHQ


@pytest.fixture(scope="module")
def hq_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HQProcess]:
    process = HQProcess(tmp_path_factory.mktemp("hq") / "hq.db")
    for outlet_id in ("A", "B"):
        process.outlet_add(outlet_id)
    _ = process.admin_token
    process.start()
    yield process
    process.kill()


@pytest.fixture(scope="module")
def hq(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
       ) -> Iterator[AnyHQ]:
    if getattr(request, "param", "in process") == "real process":
        yield request.getfixturevalue("hq_process")
        return
    here = InProcessHQ(tmp_path_factory.mktemp("hq") / "hq.db")
    for outlet_id in ("A", "B"):
        here.outlet_add(outlet_id)
    _ = here.admin_token
    here.start()
    yield here
    here.close()


@pytest.fixture
def outlet_a(hq: AnyHQ) -> HQClient:
    return HQClient(hq, "A", hq.tokens["A"])


@pytest.fixture
def outlet_b(hq: AnyHQ) -> HQClient:
    return HQClient(hq, "B", hq.tokens["B"])
