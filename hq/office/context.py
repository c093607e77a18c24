"""What every router of HQ's back office is made from: the `Office` (docs/backoffice.md).

`app()` in hq/office/__init__.py builds one `Office` and hands it to each area's
`router(office)`. Routers import this module, hq/ modules and web/office.py, never
hq/office/__init__.py (that would be a cycle: it imports them).

- `office.chain`: HQ's chain; pages read and write only through hq/ modules (hq/admin.py,
  hq/invoices.py, hq/staff.py...), never with SQL of their own.
- `office.router(role=Role.viewer)`: an APIRouter whose every page needs a signed-in member
  of staff holding at least `role` (schema/roles.py: viewer < operator < administrator; a
  stranger is sent to the login form and back, a lower role gets a 403 page saying which
  role it needs). Every area but the login uses it; there is no router without a role.
- `office.form(Role.operator)`: the dependency of a POST form that changes something: the
  role, the same origin and the form's CSRF token checked; it gives the `Actor` (who is
  changing it) that the hq/ operation takes and records in the audit trail (hq/audit.py),
  in the same transaction as the change:
  `actor: Annotated[Actor, Depends(office.form(Role.operator))]`.
- `office.requires(role)`: the same role check for one page of a router with a lower role.
- `office.page(request, template, http_status=200, **variables)`: a template of
  hq/office/templates (or web/templates) as an HTML answer, with the signed-in user, their
  role, `may(role)` (whether they hold it: templates show an edit button only then) and the
  CSRF token; `see_other(request, path)`: the redirect after a form, inside the mount.
- `office.clock` (HQ's wall clock, replaceable in tests) and `office.stale_after_s` (when
  an outlet not heard from counts as out of touch).

The role is read from HQ's database on every request, so a new role or a disabled account
takes effect at once. tests/web/test_office_routers.py finds every route's declared role
(the `office_role` mark of these dependencies) and fails on a page without one.
"""

# no `from __future__ import annotations`: FastAPI reads the annotations of the
# dependencies made in `requires` and `form` and needs real objects.
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from hq import staff
from hq.audit import Actor
from hq.chain import Chain
from schema.errors import RoleRequired
from schema.roles import ROLES, Role, may
from web.office import LoginNeeded, Pages, Sessions, check_form


@dataclass(frozen=True, eq=False)  # one per app: compared and hashed by identity
class Office:
    chain: Chain
    pages: Pages
    sessions: Sessions
    clock: Callable[[], datetime]
    stale_after_s: int
    _needs: dict[Role, Callable[..., Actor]] = field(default_factory=dict, repr=False)
    _forms: dict[Role, Callable[..., Actor]] = field(default_factory=dict, repr=False)

    def signed_in(self, request: Request) -> dict[str, Any]:
        """The session of a page (LoginNeeded without a valid one); no role checked."""
        return self.sessions.signed_in(request)

    def requires(self, role: Role) -> Callable[..., Actor]:
        """The dependency of a page that needs `role` or a higher one: who is signed in."""
        if role not in self._needs:
            if not ROLES[role].office:
                raise ValueError(f"the {role} role opens no back-office page")
            chain = self.chain

            def holding(request: Request,
                        session: Annotated[dict[str, Any], Depends(self.signed_in)]) -> Actor:
                held = staff.role(chain.db, session["u"])
                if held is None:  # the account is gone since the cookie was signed
                    raise LoginNeeded()
                request.state.role = held
                if not may(held, role):
                    raise RoleRequired(f"this needs the {role} role and {session['u']} is "
                                       f"{'an' if held[0] in 'aeiou' else 'a'} {held}: ask an "
                                       "administrator if you should have it", role=role)
                return Actor(session["u"], held)

            holding.office_role = role  # type: ignore[attr-defined]
            self._needs[role] = holding
        return self._needs[role]

    def form(self, role: Role) -> Callable[..., Actor]:
        """The dependency of a POST form that needs `role`: who is changing something, after
        the role, the origin and the form's CSRF token are checked (403 otherwise)."""
        if role not in self._forms:
            sessions = self.sessions

            def checked(request: Request, actor: Annotated[Actor, Depends(self.requires(role))],
                        csrf: Annotated[str, Form(max_length=200)] = "") -> Actor:
                check_form(request, sessions, request.state.session, csrf)
                return actor

            checked.office_form = True  # type: ignore[attr-defined]
            self._forms[role] = checked
        return self._forms[role]

    def router(self, *, role: Role) -> APIRouter:
        """A router whose every page needs a signed-in member of staff holding `role`."""
        return APIRouter(dependencies=[Depends(self.requires(role))])

    def page(self, request: Request, template: str, http_status: int = 200,
             **variables: Any) -> HTMLResponse:
        return self.pages.page(request, template, http_status, **variables)


def base(request: Request) -> str:
    """Where the office is mounted ("/office" under hq/api.py, "" on its own)."""
    return str(request.scope.get("root_path", ""))


def see_other(request: Request, path: str) -> RedirectResponse:
    """303 to `path` inside the office: where a browser goes after a form."""
    return RedirectResponse(f"{base(request)}{path}", status_code=303)
