"""How HQ's back office (hq/office/) is put together, checked in process: one router per
area, composed by `app()`; no SQL in a page (the reads live in hq/ modules, tested in
tests/hq/test_admin_reads.py); every page but the login form needs a session, including
the pages of a router added later; every page and form declares the role it needs
(`office.router(role=...)`, `office.form(role)`) and refuses a lower one, so a page whose
author forgot the role fails here."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter, Depends, FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

import hq.office
from hq import credentials, staff
from hq.chain import Chain
from hq.office.context import Office
from schema.roles import OFFICE_ROLES, Role, may
from web.office import Sessions

OFFICE = Path(hq.office.__file__).parent
SQL = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|CREATE|PRAGMA)\b")
DATABASE_CALLS = {"execute", "executemany", "executescript", "all", "one", "scalar", "read",
                  "write"}
PUBLIC = {"/login", "/static/{name}"}
PASSWORD = "a long enough password"


# HQ's stores (as tests/hq/hqkit.py STORES): PostgreSQL's cluster is a process (slow tier)
@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def chain(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Chain]:
    the_chain = Chain(request.getfixturevalue("hq_pg") if request.param == "postgresql"
                      else tmp_path / "hq.db")
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


# --- roles ----------------------------------------------------------------------------------
def _declared(dependant: Dependant) -> tuple[list[Role], bool]:
    """The roles the dependencies of a route declare, and whether one is a checked form."""
    roles, form = [], False
    for dep in dependant.dependencies:
        role = getattr(dep.call, "office_role", None)
        if role is not None:
            roles.append(role)
        form = form or bool(getattr(dep.call, "office_form", False))
        inner_roles, inner_form = _declared(dep)
        roles += inner_roles
        form = form or inner_form
    return roles, form


def api_routes(routes: list[Any]) -> Iterator[APIRoute]:
    """Every APIRoute of an app, inside the routers it includes too (FastAPI keeps an
    included router whole, as `original_router`)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif getattr(route, "original_router", None) is not None:
            yield from api_routes(route.original_router.routes)


def declared_roles(app: FastAPI) -> dict[tuple[str, str], tuple[Role | None, bool]]:
    """Per page and form of `app` (but the public ones): the highest role it needs (None:
    none declared) and whether it is a checked form."""
    found: dict[tuple[str, str], tuple[Role | None, bool]] = {}
    for route in api_routes(app.routes):
        if route.path in PUBLIC:
            continue
        roles, form = _declared(route.dependant)
        needed = max(roles, key=lambda r: OFFICE_ROLES.index(r)) if roles else None
        for method in route.methods or ():
            found[(method, route.path)] = (needed, form)
    return found


def test_every_page_and_form_declares_the_role_it_needs(chain: Chain) -> None:
    found = declared_roles(hq.office.app(chain))
    undeclared = sorted(page for page, (role, _) in found.items() if role is None)
    assert not undeclared, "give the router a role (office.router(role=Role.viewer)) or the " \
        f"form one (office.form(Role.operator)): {undeclared}"
    unchecked = sorted(page for page, (_, form) in found.items()
                       if page[0] == "POST" and not form)
    assert not unchecked, f"a form that changes something takes office.form(role): {unchecked}"
    assert found[("GET", "/reports")][0] is Role.viewer
    assert found[("POST", "/invoices/{number}/bank-payment")][0] is Role.operator
    assert found[("GET", "/staff")][0] is Role.administrator
    assert found[("GET", "/audit")][0] is Role.viewer


def test_a_page_without_a_declared_role_is_caught(chain: Chain) -> None:
    """The check above is not vacuous: a router made without a role shows up."""
    office = Office(chain=chain, pages=None, sessions=None, clock=None,  # type: ignore[arg-type]
                    stale_after_s=0)
    app = FastAPI()
    sloppy = APIRouter(dependencies=[Depends(office.signed_in)])

    @sloppy.get("/forgotten")
    def forgotten() -> str:
        return "anyone signed in"

    careful = office.router(role=Role.operator)

    @careful.get("/minded")
    def minded() -> str:
        return "operators"

    app.include_router(sloppy)
    app.include_router(careful)
    assert declared_roles(app) == {("GET", "/forgotten"): (None, False),
                                   ("GET", "/minded"): (Role.operator, False)}


def signed_in_as(chain: Chain, app: FastAPI, role: Role) -> TestClient:
    """A browser with a session of a fresh account holding `role`."""
    username = f"{role}-1"
    with chain.db.write() as conn:
        staff.add(conn, username, PASSWORD, role=role)
    client = TestClient(app, base_url="http://127.0.0.1")
    sessions = Sessions(staff.session_key(chain), lambda _: 0, "loyalty_office")
    client.cookies.set("loyalty_office", sessions.issue(username, 0))
    return client


def test_each_role_opens_exactly_what_its_rung_allows(chain: Chain) -> None:
    """Every page and form, with a session of every role: a role below the declared one
    gets 403 role_required (a page saying so), the declared one or above never does. A desk
    account (a role that opens no page) is refused everywhere: a page that checked only the
    session would let it in."""
    app = hq.office.app(chain)
    found = declared_roles(app)
    assert {path for _, path in found} == {path for path in app.openapi()["paths"]} - PUBLIC
    browsers = {role: signed_in_as(chain, app, role) for role in Role}
    for (method, path), (needed, _) in sorted(found.items()):
        assert needed is not None
        for role, browser in browsers.items():
            answer = browser.request(method, re.sub(r"\{[^}]+\}", "1", path),
                                     data={"csrf": "x", "amount": "1"}, follow_redirects=False)
            refused = answer.status_code == 403 and 'data-code="role_required"' in answer.text
            assert refused == (not may(role, needed)), (method, path, role, answer.status_code)
