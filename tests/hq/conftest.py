"""Fixtures of the HQ tests: HQ in this process, or a real `loyalty hq serve` process.

`hq`: HQ with outlets A and B (or the module's `HQ_OUTLETS`) registered through `loyalty hq
outlet-add` (their tokens in `hq.tokens`) and an admin token, one per module, in this process (hqkit.InProcessHQ: the
app `loyalty hq serve` serves, answered without uvicorn). Parametrized indirectly with
"real process" (`@pytest.mark.parametrize("hq", TIERS, indirect=True)`), it is
`hq_process` instead: the same HQ as a real process, whose stderr is attached to the report
of a failing test (the slow tier); with "postgresql", the in-process HQ on a PostgreSQL
database of the module (from the migrated template; slow tier: the cluster is a process).
A module setting `HQ_ON_BOTH_STORES = True` runs each test using `hq` that does not
parametrize it itself on both stores (hqkit.HQ_STORES; such tests take hqkit.HQ_TIERS); a
test there using `hq_db` (a module making its own HQ on it) gets `hq_db` on both instead.
`outlet_a` / `outlet_b`: `HQClient`s that push hand-made events as that outlet.
`hq_db`: HQ's `--db` for one test, on either store (`@pytest.mark.parametrize("hq_db",
STORES, indirect=True)`, hqkit.STORES): a new SQLite file, or a new PostgreSQL database
copied from one HQ's migrations were applied to once (`hq_pg` alone gives the latter;
`hq_pg_dbs` a new one per call, for a property test's examples); `hq_dbs`: new ones on
`hq_db`'s store, one per call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from chainkit import HQProcess
from hqkit import HQ_STORES, STORES, AnyHQ, HQClient, InProcessHQ
from testkit.postgres import Cluster


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
    kind = getattr(request, "param", "in process")
    if kind == "real process":
        yield request.getfixturevalue("hq_process")
        return
    folder = tmp_path_factory.mktemp("hq")
    url = None
    if kind == "postgresql":
        cluster: Cluster = request.getfixturevalue("pg_cluster")
        url = cluster.database(template=cluster.template("hq", _migrated_hq))
        here = InProcessHQ(url, log=folder / "hq.log")
    else:
        here = InProcessHQ(folder / "hq.db")
    for outlet_id in getattr(request.module, "HQ_OUTLETS", ("A", "B")):
        here.outlet_add(outlet_id)
    _ = here.admin_token
    here.start()
    yield here
    here.close()
    if url is not None:
        cluster.drop(url)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """`hq` (or `hq_db`) on both stores in a module that asks (`HQ_ON_BOTH_STORES = True`)."""
    if not getattr(metafunc.module, "HQ_ON_BOTH_STORES", False):
        return
    said = {m.args[0] for m in metafunc.definition.iter_markers("parametrize") if m.args}
    if "hq_db" in metafunc.fixturenames:
        # a module building its own HQ on `hq_db` (even under a fixture named `hq`)
        if "hq_db" not in said:
            metafunc.parametrize("hq_db", STORES, indirect=True)
        return
    if "hq" not in metafunc.fixturenames or "hq" in said:
        return  # the test says its own (hqkit.HQ_TIERS)
    metafunc.parametrize("hq", HQ_STORES, indirect=True, scope="module")


@pytest.fixture
def outlet_a(hq: AnyHQ) -> HQClient:
    return HQClient(hq, "A", hq.tokens["A"])


@pytest.fixture
def outlet_b(hq: AnyHQ) -> HQClient:
    return HQClient(hq, "B", hq.tokens["B"])


def _migrated_hq(url: str) -> None:
    from hq.store.postgres import PgStore

    PgStore(url).close()


@pytest.fixture
def hq_pg(pg_cluster: Cluster) -> Iterator[str]:
    """The URL of a new PostgreSQL database with HQ's tables (from a template), dropped after."""
    url = pg_cluster.database(template=pg_cluster.template("hq", _migrated_hq))
    yield url
    pg_cluster.drop(url)


@pytest.fixture
def hq_pg_dbs(pg_cluster: Cluster) -> Iterator[Callable[[], str]]:
    """New PostgreSQL databases with HQ's tables, one per call (each example of a property
    test on an HQ of its own), all dropped after the test."""
    made: list[str] = []

    def new() -> str:
        made.append(pg_cluster.database(template=pg_cluster.template("hq", _migrated_hq)))
        return made[-1]

    yield new
    for url in made:
        pg_cluster.drop(url)


@pytest.fixture
def hq_db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """HQ's --db on the store the test is parametrized with ("sqlite" or "postgresql")."""
    if getattr(request, "param", "sqlite") == "postgresql":
        return str(request.getfixturevalue("hq_pg"))
    return str(tmp_path / "hq.db")


@pytest.fixture
def hq_dbs(hq_db: str, request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Callable[[], str]:
    """New HQ --db's on `hq_db`'s store, one per call (a test comparing HQs side by side)."""
    if not hq_db.startswith("postgresql"):
        return lambda: str(tmp_path_factory.mktemp("hq") / "hq.db")
    made: Callable[[], str] = request.getfixturevalue("hq_pg_dbs")
    return made
