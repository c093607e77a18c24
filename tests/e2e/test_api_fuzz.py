"""A bounded schemathesis run over both services' OpenAPI documents (issue 9, "Done means"):
no request, however malformed, gets a 5xx answer.

The services are real processes on real SQLite files (`loyalty agent serve` with a till
token, `loyalty hq serve` with an outlet and an admin token), and schemathesis is its own
command line, as an attacker or an integrator would run it: every phase (coverage of
boundary and invalid values, fuzzing, stateful sequences through the inferred links), a
fixed seed and a fixed number of examples per operation, one worker, the
`not_a_server_error` check. The till API's document is typed (issue 10), so its run also
checks that every answer is one the document declares: a status it lists
(`status_code_conformance`) with a body that matches that status's schema
(`response_schema_conformance`). The tokens are sent, so the authenticated endpoints are
exercised beyond their 401. Long polls are asked with `wait=0` (a fuzzer would otherwise
sit out 60 s per example). Left out: personalising a smart card (it drives a PC/SC reader;
with none attached its documented answer is 503 `device_error`; tests/hardware covers it).

Every 5xx this run found has a regression test of its own where the defect lives
(tests/agent/test_till_api.py, tests/hq/test_admin_input.py).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from agentkit import AgentProcess
from chainkit import HQProcess

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
SEED = 20240601
EXAMPLES = 40  # per operation and phase
TILL_TOKEN = "till-secret-for-the-fuzzer"
CONFIG = """\
[parameters]
"query.wait" = 0
"""


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentProcess]:
    process = AgentProcess(tmp_path_factory.mktemp("fuzz-agent") / "outlet.db", "F",
                           till_token=TILL_TOKEN)
    process.start()
    yield process
    process.kill()


@pytest.fixture(scope="module")
def hq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HQProcess]:
    process = HQProcess(tmp_path_factory.mktemp("fuzz-hq") / "hq.db")
    process.outlet_add("A")
    _ = process.admin_token
    process.start()
    yield process
    process.kill()


def fuzz(tmp_path: Path, url: str, token: str, *selection: str,
         checks: str = "not_a_server_error") -> None:
    """Runs schemathesis over the service at `url`; fails with its report on any 5xx (and
    on whatever else `checks` names)."""
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    done = subprocess.run(
        [str(SCHEMATHESIS), "--config-file", str(config), "--no-color", "run",
         f"{url}/openapi.json", "--header", f"Authorization: Bearer {token}",
         "--checks", checks, "--max-examples", str(EXAMPLES),
         "--seed", str(SEED), "--workers", "1", "--generation-database", "none",
         "--request-timeout", "15", *selection],
        cwd=tmp_path, capture_output=True, text=True, timeout=540, check=False,
        stdin=subprocess.DEVNULL)
    report = done.stdout[-12_000:] + done.stderr[-3_000:]
    assert "Server error" not in done.stdout, report
    assert "Response violates schema" not in done.stdout, report
    assert done.returncode == 0, report
    assert " passed" in done.stdout and "Seed: " in done.stdout, report


def test_the_till_api_never_answers_5xx_and_answers_what_its_document_says(
        agent: AgentProcess, tmp_path: Path) -> None:
    fuzz(tmp_path, agent.url, TILL_TOKEN,
         "--exclude-path", "/v1/customers/{customer_id}/smartcard",
         checks="not_a_server_error,response_schema_conformance,status_code_conformance")
    assert "Traceback" not in agent.log.read_text(errors="replace")


# HQ's answers are typed (schema/adminapi.py, schema/sync.py, errors as ErrorBody): every
# answer must also match the schema /openapi.json documents for its status
HQ_CHECKS = ("--checks", "response_schema_conformance")


def test_hq_admin_api_never_answers_5xx_and_answers_as_documented(
        hq: HQProcess, tmp_path: Path) -> None:
    fuzz(tmp_path, hq.url, hq.admin_token, *HQ_CHECKS, "--include-path-regex", "^/v1/admin/")
    assert "Traceback" not in hq.log.read_text(errors="replace")


def test_hq_sync_api_never_answers_5xx_and_answers_as_documented(
        hq: HQProcess, tmp_path: Path) -> None:
    fuzz(tmp_path, hq.url, hq.tokens["A"], *HQ_CHECKS, "--include-path-regex", "^/v1/sync/")
    assert "Traceback" not in hq.log.read_text(errors="replace")
