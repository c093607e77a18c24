"""Fixtures of the end-to-end tests: HQ and outlet agents as real processes on loopback.

`chain`: a fresh HQ (`loyalty hq serve`) with outlets A and B registered through
`loyalty hq outlet-add` and running as `loyalty agent serve --hq URL --token T`; every
process is killed at teardown and its stderr is attached to the report of a failing test.
The chain is shared by the tests of a module (each uses its own customers) and is made
healthy again before every test. `rig`: a chain of one test, not started yet.

HQ serves a SQLite file; a module setting `CHAIN_ON_BOTH_STORES = True` runs each of its
tests on both of HQ's stores (`chain_store`, ids chainkit.STORES): on PostgreSQL, HQ serves
a new database of the test run's cluster (chainkit.hq_store), one per chain.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from chainkit import STORES, ChainRig, hq_store


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Both stores in a module that asks (`CHAIN_ON_BOTH_STORES = True`)."""
    if "chain_store" in metafunc.fixturenames and getattr(metafunc.module,
                                                          "CHAIN_ON_BOTH_STORES", False):
        metafunc.parametrize("chain_store", STORES, indirect=True, scope="module")


@pytest.fixture(scope="module")
def chain_store(request: pytest.FixtureRequest) -> str:
    """The store HQ's chain runs on: "sqlite" unless the module asks for both."""
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture
def rig(request: pytest.FixtureRequest, tmp_path: Path, chain_store: str) -> Iterator[ChainRig]:
    """A chain of this test only, not started (tests that replace HQ's file use it)."""
    with hq_store(request, chain_store) as db:
        chain = ChainRig(tmp_path, db)
        try:
            yield chain
        finally:
            chain.close()


@pytest.fixture(scope="module")
def shared_chain(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                 chain_store: str) -> Iterator[ChainRig]:
    with hq_store(request, chain_store) as db:
        chain = ChainRig(tmp_path_factory.mktemp("chain"), db)
        try:
            yield chain.start(("A", "B"))
        finally:
            chain.close()


@pytest.fixture
def chain(shared_chain: ChainRig) -> ChainRig:
    """HQ plus outlets A and B, running, each having met HQ, nothing pending.

    Shared by the tests of a module (starting processes is the slow part); every test
    uses its own customers. A test that stopped HQ gets it started again here.
    """
    for process in shared_chain.processes():
        if not process.running:
            process.start()
    shared_chain.settled()
    return shared_chain
