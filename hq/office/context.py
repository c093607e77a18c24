"""What every router of HQ's back office is made from: the `Office` (docs/backoffice.md).

`app()` in hq/office/__init__.py builds one `Office` and hands it to each area's
`router(office)`. Routers import this module, hq/ modules and web/office.py, never
hq/office/__init__.py (that would be a cycle: it imports them).

- `office.chain`: HQ's chain; pages read and write only through hq/ modules (hq/admin.py,
  hq/invoices.py, hq/staff.py...), never with SQL of their own.
- `office.router()`: an APIRouter whose every page needs a signed-in member of staff (a
  stranger is sent to the login form and back). Every area but the login uses it.
- `office.staff` / `office.posted`: the dependencies giving the session of a page / of a
  POST form (signed in, same origin, its CSRF token checked); a form that changes something
  takes `session: Annotated[dict[str, Any], Depends(office.posted)]`.
- `office.page(request, template, http_status=200, **variables)`: a template of
  hq/office/templates (or web/templates) as an HTML answer, with the signed-in user and the
  CSRF token; `see_other(request, path)`: the redirect after a form, inside the mount.
- `office.clock` (HQ's wall clock, replaceable in tests) and `office.stale_after_s` (when
  an outlet not heard from counts as out of touch).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from hq.chain import Chain
from web.office import Pages, Sessions


@dataclass(frozen=True)
class Office:
    chain: Chain
    pages: Pages
    sessions: Sessions
    staff: Callable[..., dict[str, Any]]  # the session of a page (LoginNeeded without one)
    posted: Callable[..., dict[str, Any]]  # the session of a checked POST form
    clock: Callable[[], datetime]
    stale_after_s: int

    def router(self) -> APIRouter:
        """A router for pages behind the login."""
        return APIRouter(dependencies=[Depends(self.staff)])

    def page(self, request: Request, template: str, http_status: int = 200,
             **variables: Any) -> HTMLResponse:
        return self.pages.page(request, template, http_status, **variables)


def base(request: Request) -> str:
    """Where the office is mounted ("/office" under hq/api.py, "" on its own)."""
    return str(request.scope.get("root_path", ""))


def see_other(request: Request, path: str) -> RedirectResponse:
    """303 to `path` inside the office: where a browser goes after a form."""
    return RedirectResponse(f"{base(request)}{path}", status_code=303)
