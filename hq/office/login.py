"""Logging in and out of HQ's back office: the only pages open without a session.

A login is throttled per username (web/office.py `Sessions`); the session cookie is
HttpOnly, SameSite=Strict, limited to the mount path, Secure over https. An account whose
role opens no page here (a reception desk account, schema/roles.py) is refused with a page
that says so. Logging out ends every session of the account (`staff.log_out`).
"""

# no `from __future__ import annotations`: FastAPI reads the route annotations (Annotated
# with Depends/Form) and needs real objects.
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from hq import staff
from hq.audit import Actor
from hq.office.context import Office, base, see_other
from schema import passwords
from schema.roles import ROLES, Role
from web.office import safe_next, same_origin


def router(office: Office) -> APIRouter:
    routes = APIRouter()
    sessions = office.sessions

    @routes.get("/login")
    def login_form(request: Request, next: str | None = None) -> HTMLResponse:
        return office.page(request, "login.html", title="Log in", next=safe_next(next),
                           error=None)

    @routes.post("/login")
    def login(request: Request, username: Annotated[str, Form(max_length=64)],
              password: Annotated[str, Form(max_length=passwords.MAX_PASSWORD)],
              next: Annotated[str, Form(max_length=2000)] = "/") -> Response:
        same_origin(request)
        target = safe_next(next)
        if sessions.throttled(username):
            return office.page(request, "login.html", 429, title="Log in", next=target,
                               error="Too many failed attempts: wait a few minutes.")
        generation = staff.authenticate(office.chain.db, username, password)
        if generation is None:
            sessions.failed(username)
            return office.page(request, "login.html", 401, title="Log in", next=target,
                               error="Wrong username or password.")
        sessions.succeeded(username)
        held = staff.role(office.chain.db, username)
        if held is None or not ROLES[held].office:
            return office.page(request, "login.html", 403, title="Log in", next=target,
                               error=f"{username} is a reception desk account: it signs in at "
                                     "an outlet's desk, not in the back office.")
        staff.logged_in(office.chain.db, username)
        mount = base(request)
        target = target if target.startswith(mount + "/") else mount + target
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(sessions.cookie, sessions.issue(username, generation),
                            max_age=sessions.ttl_s, path=mount or "/", httponly=True,
                            samesite="strict", secure=request.url.scheme == "https")
        return response

    @routes.post("/logout")
    def logout(request: Request,
               actor: Annotated[Actor, Depends(office.form(Role.viewer))]) -> Response:
        staff.log_out(office.chain.db, actor.username)
        response = see_other(request, "/login")
        response.delete_cookie(sessions.cookie, path=base(request) or "/", httponly=True,
                               samesite="strict")
        return response

    return routes
