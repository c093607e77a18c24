"""HQ's admin API refuses dates it cannot compute with (issue 9): a `today` or an issue
date at the ends of the calendar is `422 invalid_request` naming the field, never a 500,
and changes nothing. Against a real `loyalty hq serve` process (tests/hq/conftest.py)."""

from __future__ import annotations

from typing import Any

import pytest
from agentkit import expect_error
from chainkit import HQProcess
from hqkit import snapshot


@pytest.mark.parametrize("path, body, field", [
    ("/v1/admin/invoices/refresh", {"today": "0001-01-01"}, "today"),
    ("/v1/admin/invoices/refresh", {"today": "9999-12-31"}, "today"),
    ("/v1/admin/categories/assign", {"today": "0001-01-01"}, "today"),
    ("/v1/admin/categories/assign", {"today": "9999-12-31"}, "today"),
    ("/v1/admin/invoices/close", {"period_from": "2026-12-01", "period_to": "2027-01-01",
                                  "issued_on": "9999-12-31"}, "issued_on"),
    ("/v1/admin/invoices/close", {"period_from": "0001-01-01", "period_to": "2026-01-01",
                                  "issued_on": "2026-01-01"}, "period_from"),
])
def test_a_date_at_the_end_of_the_calendar_is_invalid_request_naming_the_field(
        hq: HQProcess, path: str, body: dict[str, Any], field: str) -> None:
    before = snapshot(hq)
    error = expect_error(hq.admin("POST", path, None, json=body), 422, "invalid_request")
    assert error["message"].startswith(f"{field}: "), error
    assert snapshot(hq) == before
