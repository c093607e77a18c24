"""How HQ's back office (hq/office/) is put together, checked in process: one router per
area, composed by `app()`; no SQL in a page (the reads live in hq/ modules, tested in
tests/hq/test_admin_reads.py); every page but the login form needs a session, including
the pages of a router added later."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import hq.office
from hq import credentials
from hq.chain import Chain

OFFICE = Path(hq.office.__file__).parent
SQL = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|CREATE|PRAGMA)\b")
DATABASE_CALLS = {"execute", "executemany", "executescript", "all", "one", "scalar", "read",
                  "write"}
PUBLIC = {"/login", "/static/{name}"}


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[Chain]:
    the_chain = Chain(tmp_path / "hq.db")
    with the_chain.db.write() as conn:
        credentials.add_outlet(conn, "A")
    yield the_chain
    the_chain.close()


def sources() -> list[Path]:
    return sorted(OFFICE.glob("*.py"))


def test_no_page_holds_sql_or_opens_the_database_itself() -> None:
    found = []
    for path in sources():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and SQL.search(node.value):
                found.append(f"{path.name}:{node.lineno} SQL {node.value[:40]!r}")
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and node.func.attr in DATABASE_CALLS \
                    and "db" in ast.unparse(node.func.value).split("."):
                found.append(f"{path.name}:{node.lineno} {ast.unparse(node.func)}()")
    found.sort()
    assert not found, "read through an hq/ module instead (hq/admin.py...):\n" + "\n".join(found)


def test_every_area_module_is_composed_by_the_app_and_the_app_defines_no_page() -> None:
    areas = {m.name for m in pkgutil.iter_modules([str(OFFICE)])} - {"context"}
    composed = {area.__name__.rsplit(".", 1)[1] for area in hq.office.AREAS}
    assert composed == areas, "list each hq/office module with a router in AREAS"
    for area in hq.office.AREAS:
        assert callable(importlib.import_module(area.__name__).router)
    tree = ast.parse((OFFICE / "__init__.py").read_text())
    decorated = [n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
                 and n.decorator_list]
    assert decorated == [], "pages belong in an area's router, not in app()"


def test_every_page_but_the_login_form_sends_a_stranger_to_log_in(chain: Chain) -> None:
    app = hq.office.app(chain)
    client = TestClient(app, base_url="http://127.0.0.1")
    pages = {(method.upper(), path) for path, methods in app.openapi()["paths"].items()
             for method in methods if path not in PUBLIC}
    assert len(pages) >= 15 and ("POST", "/logout") in pages
    for method, path in sorted(pages):
        answer = client.request(method, re.sub(r"\{[^}]+\}", "1", path),
                                data={"csrf": "x", "amount": "1"}, follow_redirects=False)
        assert answer.status_code == 303, (method, path, answer.status_code)
        assert answer.headers["location"].startswith("/login?next="), (method, path)
