"""Staff accounts in the back office, for administrators (docs/backoffice.md, "Roles"):
the accounts with their roles, a new account, and per account its role, disabling or
enabling it and a new password (the password typed twice, kept only as a hash). Every
change goes through hq/staff.py, which audits it with the administrator who made it and
refuses one that would leave no active administrator."""

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response

from hq import audit, staff
from hq.audit import Actor
from hq.office.context import Office, see_other
from schema import passwords
from schema.errors import Conflict, InvalidRequest
from schema.roles import ROLES, Role, role_of

DONE = {"added": "Account created.", "role": "Role changed.", "disabled": "Account disabled: "
        "its sessions have ended.", "enabled": "Account enabled.", "password": "Password set: "
        "the account's sessions have ended."}
Password = Annotated[str, Form(max_length=passwords.MAX_PASSWORD)]
Reason = Annotated[str, Form(max_length=500)]
Username = Annotated[str, Form(max_length=64)]
RoleName = Annotated[str, Form(max_length=20)]


def twice(password: str, again: str) -> str:
    if password != again:
        raise InvalidRequest("the two passwords differ: type the same one twice")
    return password


def router(office: Office) -> APIRouter:
    routes = office.router(role=Role.administrator)
    chain = office.chain
    Administrator = Annotated[Actor, Depends(office.form(Role.administrator))]

    def list_page(request: Request, http_status: int = 200, error: str | None = None,
                  form: dict[str, str] | None = None) -> HTMLResponse:
        return office.page(request, "staff.html", http_status, title="Staff",
                           rows=staff.accounts(chain), roles=ROLES, error=error,
                           form=form or {})

    def account_page(request: Request, username: str, http_status: int = 200,
                     error: str | None = None, done: str | None = None) -> HTMLResponse:
        account = staff.account(chain, username)
        history = audit.search(chain, audit.Search(subject=("staff", username)), limit=20)
        return office.page(request, "staff_account.html", http_status, title=username,
                           a=account, roles=ROLES, error=error, done=DONE.get(done or ""),
                           history=history)

    @routes.get("/staff")
    def staff_list(request: Request) -> HTMLResponse:
        return list_page(request)

    @routes.post("/staff")
    def staff_add(request: Request, actor: Administrator, username: Username, role: RoleName,
                  password: Password, again: Password, reason: Reason = "") -> Response:
        name = username.strip()
        try:
            staff.create(chain, actor, name, role_of(role), twice(password, again), reason)
        except (InvalidRequest, Conflict) as exc:
            return list_page(request, exc.status, f"{exc.message} [{exc.code}]",
                             {"username": name, "role": role, "reason": reason})
        return see_other(request, f"/staff/{quote(name)}?done=added")

    @routes.get("/staff/{username}")
    def staff_account(request: Request, username: str, done: str | None = None) -> HTMLResponse:
        return account_page(request, username, done=done)

    @routes.post("/staff/{username}/role")
    def staff_role(request: Request, username: str, actor: Administrator, role: RoleName,
                   reason: Reason = "") -> Response:
        try:
            staff.set_role(chain, actor, username, role_of(role), reason)
        except (InvalidRequest, Conflict) as exc:
            return account_page(request, username, exc.status, f"{exc.message} [{exc.code}]")
        return see_other(request, f"/staff/{quote(username)}?done=role")

    @routes.post("/staff/{username}/disable")
    def staff_disable(request: Request, username: str, actor: Administrator,
                      reason: Reason = "") -> Response:
        try:
            staff.set_disabled(chain, actor, username, True, reason)
        except Conflict as exc:
            return account_page(request, username, exc.status, f"{exc.message} [{exc.code}]")
        return see_other(request, f"/staff/{quote(username)}?done=disabled")

    @routes.post("/staff/{username}/enable")
    def staff_enable(request: Request, username: str, actor: Administrator,
                     reason: Reason = "") -> Response:
        staff.set_disabled(chain, actor, username, False, reason)
        return see_other(request, f"/staff/{quote(username)}?done=enabled")

    @routes.post("/staff/{username}/password")
    def staff_password(request: Request, username: str, actor: Administrator,
                       password: Password, again: Password, reason: Reason = "") -> Response:
        try:
            staff.set_password(chain, actor, username, twice(password, again), reason)
        except InvalidRequest as exc:
            return account_page(request, username, exc.status, f"{exc.message} [{exc.code}]")
        return see_other(request, f"/staff/{quote(username)}?done=password")

    return routes
