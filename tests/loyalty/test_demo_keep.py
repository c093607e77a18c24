"""`loyalty demo --keep DIR` (the contract): the demo's chain is left in DIR with the
commands that start HQ and the agents on it and a staff login, so a newcomer can open the
pages on real data; a DIR that holds anything is refused and nothing is written there.

The demo runs in process (`run_demo`); HQ is then started on the kept database exactly as
the demo printed it, as a real `loyalty hq serve`, and the printed login opens /office.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner
from testkit.processes import Service

from loyalty.cli import main
from loyalty.demo import run_demo


@pytest.fixture(scope="module")
def kept(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    where = tmp_path_factory.mktemp("demo") / "chain"
    printed: list[str] = []
    run_demo(keep=where, out=printed.append)
    return where, "\n".join(printed).splitlines()


def _command(lines: list[str], starts: str) -> list[str]:
    found = [line.strip() for line in lines if line.strip().startswith(starts)]
    assert found, f"no `{starts}` line in:\n" + "\n".join(lines)
    return shlex.split(found[0])


def test_the_kept_directory_holds_hq_and_every_outlet_database(
        kept: tuple[Path, list[str]]) -> None:
    where, lines = kept
    assert {p.name for p in where.glob("*.db")} == {"hq.db", "north.db", "south.db"}
    for outlet in ("NORTH", "SOUTH"):
        args = _command([ln for ln in lines if f"--outlet {outlet}" in ln], "loyalty agent serve")
        assert Path(args[args.index("--db") + 1]) == where / f"{outlet.lower()}.db"
        assert args[args.index("--token") + 1].startswith("lo_")


def test_hq_started_as_printed_on_the_kept_database_lets_the_printed_staff_login_in(
        kept: tuple[Path, list[str]], tmp_path: Path) -> None:
    where, lines = kept
    args = _command(lines, "loyalty hq serve")
    assert Path(args[args.index("--db") + 1]) == where / "hq.db"
    login = next(ln for ln in lines if "password" in ln.lower() and "administrator" in ln)
    username, password = re.search(r"username (\S+), password (\S+)", login).groups()  # type: ignore[union-attr]
    served = args[1:args.index("--port")] if "--port" in args else args[1:]
    hq = Service(tmp_path / "hq.log", args=[*served], ready_path="/office/login")
    hq.args += ["--port", str(hq.port)]
    hq.start()
    try:
        browser = requests.Session()
        answer = browser.post(hq.url + "/office/login", timeout=10,
                              data={"username": username, "password": password, "next": "/"},
                              headers={"Origin": hq.url})
        assert answer.status_code == 200 and answer.url.endswith("/office/"), answer.text[:500]
        customers = browser.get(hq.url + "/office/customers?q=Novak", timeout=10)
        assert customers.status_code == 200 and "Novak" in customers.text
    finally:
        hq.stop()


def test_a_directory_that_holds_anything_is_refused_with_a_code_and_left_alone(
        tmp_path: Path) -> None:
    where = tmp_path / "busy"
    where.mkdir()
    (where / "notes.txt").write_text("mine")
    done = CliRunner().invoke(main, ["demo", "--keep", str(where)])
    assert done.exit_code == 1
    assert "error [directory_not_empty]" in done.output, done.output
    assert [p.name for p in where.iterdir()] == ["notes.txt"]
