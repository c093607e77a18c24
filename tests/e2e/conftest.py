"""Fixtures of the end-to-end tests: HQ and outlet agents as real processes on loopback.

`chain`: a fresh HQ (`loyalty hq serve`) with outlets A and B registered through
`loyalty hq outlet-add` and running as `loyalty agent serve --hq URL --token T`; every
process is killed at teardown and its stderr is attached to the report of a failing test.
The chain is shared by the tests of a module (each uses its own customers) and is made
healthy again before every test. `rig`: a chain of one test, not started yet.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from chainkit import ChainRig


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[ChainRig]:
    """A chain of this test only, not started (tests that replace HQ's file use it)."""
    chain = ChainRig(tmp_path)
    yield chain
    chain.close()


@pytest.fixture(scope="module")
def shared_chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChainRig]:
    chain = ChainRig(tmp_path_factory.mktemp("chain"))
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
