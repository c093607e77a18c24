"""The shared test kit keeps its promises (tests/testkit): the waiting helper, the process
supervisor (a start that fails says why at once; a start whose port is still held waits
for it), the till client over an in-process app, and the ledger checker's two strengths."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest
from chainkit import ChainRig
from testkit import Service, Till, check_files, expect_error, read_only, wait_until

from agent import customers
from agent.api import create_app
from agent.outlet import Outlet
from schema.api import CustomerIn


def test_wait_until_returns_the_time_it_took_and_the_value() -> None:
    calls = iter([0, None, "", "there"])
    took, value = wait_until(lambda: next(calls), 5, every=0.01)
    assert value == "there" and 0 < took < 5


def test_wait_until_names_what_it_waited_for_and_the_last_value() -> None:
    with pytest.raises(AssertionError, match=r"the sun not met within 0.05 s \(last: 0\)"):
        wait_until(lambda: 0, 0.05, what="the sun")


def agent_args(tmp_path: Path, port: int) -> list[str]:
    return ["agent", "serve", "--db", str(tmp_path / "outlet.db"), "--outlet", "T",
            "--port", str(port)]


def test_a_service_that_exits_fails_at_once_with_the_tail_of_its_log(tmp_path: Path) -> None:
    service = Service(tmp_path / "bad.log", args=["agent", "serve", "--no-such-option"])
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="no-such-option"):
        service.start(timeout=60)
    assert time.monotonic() - started < 30, "an exit is reported, not waited out"


def test_a_service_whose_port_is_still_held_starts_once_it_is_free(tmp_path: Path) -> None:
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    service = Service(tmp_path / "agent.log", port, args=agent_args(tmp_path, port))

    def free_once_refused() -> None:  # the port is held until a start has failed on it
        wait_until(lambda: "already in use" in service.tail(), 30, what="a refused start")
        holder.close()

    threading.Thread(target=free_once_refused, daemon=True).start()
    try:
        service.start(timeout=30)
        assert "was still held" in service.tail(), service.tail()
        first = service.proc
        service.restart()
        assert service.proc is not first and service.url == f"http://127.0.0.1:{port}"
        assert Till(service.url).ok("GET", "/v1/status")
    finally:
        service.kill()
        holder.close()


def test_the_till_speaks_to_an_app_in_process_through_a_test_client(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    shop = Outlet(tmp_path / "outlet.db", "T")
    try:
        with TestClient(create_app(shop)) as client:
            till = Till("http://testserver", "T1", session=client)
            card = till.register("A")["card_number"]
            assert till.quote(card, [{"sku": "X", "name": "X", "qty": 1, "unit_price": 1000}])
            expect_error(till.post("/v1/identify", {"kind": "card", "value": "0000000000000"}),
                         404, "card_unknown")
    finally:
        shop.close()


def hq_head(hq_db: Path) -> int:
    with read_only(hq_db) as hq:
        return int(hq.execute("SELECT COALESCE(MAX(seq), 0) FROM changes").fetchone()[0])


def test_check_files_tells_a_converged_chain_from_one_still_pulling_or_missing_events(
        tmp_path: Path) -> None:
    rig = ChainRig(tmp_path).start(("A",))
    files = {"A": rig.outlets["A"].db}
    try:
        wait_until(lambda: rig.outlets["A"].till.get("/v1/gifts").json(), 20,
                   what="A has HQ's master data")
        joined = rig.outlets["A"].till.register("A")
        rig.settled()
        wait_until(lambda: rig.outlets["A"].status()["cursor"] == hq_head(rig.hq.db),
                   what="A at HQ's head")
        assert check_files(rig.hq.db, files)["events_by_outlet"] == {"A": 1}
        rig.outlets["A"].kill()
        rig.hq.admin("POST", f"/v1/admin/customers/{joined['customer_id']}/ban",
                     json={"reason": "test"})
        with pytest.raises(AssertionError):  # A has not pulled the ban
            check_files(rig.hq.db, files)
        check_files(rig.hq.db, files, converged=False)
        shop = Outlet(files["A"], "A")
        try:  # a fact A has not pushed yet
            customers.register(shop, CustomerIn(kind="person", given_name="C", surname="D"))
        finally:
            shop.close()
        with pytest.raises(AssertionError, match="HQ holds 1 events, outlet made 2"):
            check_files(rig.hq.db, files, converged=False)
    finally:
        rig.close()


def test_a_failing_test_reports_each_process_among_its_fixtures_once(tmp_path: Path) -> None:
    from testkit.processes import failure_sections

    hq, agent = Service(tmp_path / "hq.log", label="HQ"), Service(tmp_path / "a.log", label="A")
    (tmp_path / "hq.log").write_text("HQ said this")

    class Rig:
        def processes(self) -> list[Service]:
            return [hq, agent]

    sections = failure_sections([Rig(), [agent], hq, "not a process", tmp_path])
    assert sections == [(f"HQ {hq.url} stderr", "HQ said this"), (f"A {agent.url} stderr", "")]
