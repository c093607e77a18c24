"""The programme's return and expiry settings in the back office (docs/programme.md,
"The settings page"; issue 12): an operator edits the `programme` master document
(schema/masterdata.py `ProgrammeDoc`): the returns policy (points already spent: negative,
reduce the refund, or a supervisor), the value of 100 points for reduce_refund, the return
window, pending points, the outlet-wide limit on returns of other outlets' sales, and the
expiry rule (never, end of the Nth month, N months without a purchase, from a start date).

The /office/programme preview-then-save pattern: the preview shows each setting before →
after and what the expiry rule would do to the points held now ("3,120 points in 41 lots
would expire on 2027-01-31", hq.admin.expiry_outlook) and changes nothing; the save is
`hq.admin.put_master` (the admin API's PUT: an HQ fact that reaches every outlet with its
next pull), audited with the document before → after and the reason.

Promises: never retroactive by surprise: a rule turned on without a start date starts
today (hq.admin, as the admin API does), and a start date in the past is shown as the
points that would expire at once, before saving. Settings the form does not show are kept
as stored. Amounts go through schema.money.parse_money. Operators only.
"""

# no `from __future__ import annotations`: FastAPI reads the route annotations (Annotated
# with Depends/Form) and needs real objects.
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from hq import admin
from hq.audit import Actor
from hq.office.context import Office, see_other
from schema.errors import InvalidRequest, LoyaltyError
from schema.lots import ExpiryRule
from schema.masterdata import DEFAULT_PROGRAMME, PROGRAMME
from schema.money import money, parse_money
from schema.roles import Role

Text = Annotated[str, Form(max_length=40)]
Reason = Annotated[str, Form(max_length=500)]
LABELS = {"points_policy": "Points already spent", "point_value_per_100": "Value of 100 points",
          "return_window_days": "Return window (days)", "pending_points": "Pending points",
          "outlet_floor_returns": "Outlet limit on other outlets' returns",
          "kind": "Points expire", "months": "Months", "since": "Counted from",
          "grace_days": "Days of grace before HQ expires a lot"}
POLICIES = {"negative": "the balance goes negative (future earnings repay it)",
            "reduce_refund": "the refund is reduced by the points' value",
            "supervisor": "refused: a supervisor decides"}
EXPIRY = {"never": "never", "end_of_month": "at the end of the Nth month after earning",
          "inactivity": "after N months without a purchase"}
FIELDS = ("points_policy", "point_value_per_100", "return_window_days", "pending_points",
          "outlet_floor_returns", "kind", "months", "since", "grace_days")


def _whole(text: str, name: str) -> int:
    value = text.strip()
    if not value.isascii() or not value.isdigit():
        raise InvalidRequest(f"{LABELS[name]}: type a whole number", field=name)
    return int(value)


def stored(chain: Any) -> dict[str, Any]:
    """The programme document as stored (the defaults when there is none)."""
    return admin.master_docs(chain, PROGRAMME).get(PROGRAMME) \
        or DEFAULT_PROGRAMME.model_dump(mode="json")


def form_of(doc: dict[str, Any]) -> dict[str, str]:
    """The form as it shows a stored document."""
    returns, expiry = doc.get("returns", {}), doc.get("expiry", {})
    floor = returns.get("outlet_floor_returns")
    kind = str(expiry.get("kind", "never"))
    return {"points_policy": str(returns.get("points_policy", "negative")),
            "point_value_per_100": money(int(returns.get("point_value_per_100", 0)), grouped=False),
            "return_window_days": str(returns.get("return_window_days", 30)),
            "pending_points": "on" if returns.get("pending_points") else "",
            "outlet_floor_returns": "" if floor is None else money(int(floor), grouped=False),
            "kind": kind, "months": str(expiry.get("months", 0) or ""),
            "since": str(expiry.get("since", "")) if kind != "never" else "",
            "grace_days": str(expiry.get("grace_days", 7))}


def doc_of(current: dict[str, Any], form: dict[str, str]) -> dict[str, Any]:
    """The programme document the form describes, over the stored one (fields the form
    does not show are kept). A blank start date: from today (hq.admin fills it in)."""
    floor = form.get("outlet_floor_returns", "").strip()
    value = form.get("point_value_per_100", "").strip()
    returns = {**current.get("returns", {}),
               "points_policy": form.get("points_policy", "negative"),
               "point_value_per_100": parse_money(value, field=LABELS["point_value_per_100"])
               if value else 0,
               "return_window_days": _whole(form.get("return_window_days", ""),
                                            "return_window_days"),
               "pending_points": bool(form.get("pending_points")),
               "outlet_floor_returns": parse_money(floor, field=LABELS["outlet_floor_returns"])
               if floor else None}
    kind = form.get("kind", "never")
    expiry: dict[str, Any] = {"kind": kind}
    if kind != "never":
        expiry["months"] = _whole(form.get("months", ""), "months")
        since = form.get("since", "").strip()
        if since:
            try:
                date.fromisoformat(since)
            except ValueError:
                raise InvalidRequest(f"{LABELS['since']}: choose a day (YYYY-MM-DD) or leave "
                                     "it empty for today", field="since") from None
            expiry["since"] = since
        grace = form.get("grace_days", "").strip()
        expiry["grace_days"] = _whole(grace, "grace_days") if grace else 7
    return {**current, "returns": returns, "expiry": expiry}


def flat(doc: dict[str, Any] | None) -> dict[str, Any]:
    doc = doc or {}
    return {**doc.get("returns", {}), **doc.get("expiry", {})}


def shown(name: str, value: Any) -> str:
    if value is None or value == "":
        return "no limit" if name == "outlet_floor_returns" else "-"
    if name in ("point_value_per_100", "outlet_floor_returns"):
        return money(int(value))
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(POLICIES.get(value, EXPIRY.get(value, value))) if isinstance(value, str) \
        else str(value)


def router(office: Office) -> APIRouter:
    routes = office.router(role=Role.operator)
    chain = office.chain
    Operator = Annotated[Actor, Depends(office.form(Role.operator))]

    def page(request: Request, form: dict[str, str], http_status: int = 200,
             error: str | None = None, preview: dict[str, Any] | None = None,
             done: bool = False) -> HTMLResponse:
        return office.page(request, "programme_settings.html", http_status,
                           title="Returns and expiry", f=form, error=error, preview=preview,
                           done=done, policies=POLICIES, expiry_kinds=EXPIRY, labels=LABELS)

    def previewed(form: dict[str, str]) -> dict[str, Any]:
        current = stored(chain)
        try:
            change = admin.master_change(chain, PROGRAMME, doc_of(current, form))
        except ValidationError as exc:
            first = exc.errors()[0]
            name = str(first["loc"][-1]) if first["loc"] else ""
            message = str(first["msg"]).removeprefix("Value error, ")
            raise InvalidRequest(f"{LABELS.get(name, name)}: {message}".lstrip(": "),
                                 field=name or None) from None
        before, after = flat(change["before"] or DEFAULT_PROGRAMME.model_dump(mode="json")), \
            flat(change["after"])
        today = date.fromisoformat(chain.clock()[:10])  # HQ's day, as hq.admin counts it
        rule = ExpiryRule.model_validate(change["after"]["expiry"])
        return {"doc": change["after"],
                "changes": [(LABELS[n], shown(n, before.get(n)), shown(n, after.get(n)))
                            for n in FIELDS if before.get(n) != after.get(n)],
                "rule": rule, "today": today,
                "outlook": admin.expiry_outlook(chain, rule, today)}

    @routes.get("/programme/settings")
    def settings_form(request: Request, done: str = "") -> HTMLResponse:
        return page(request, form_of(stored(chain)), done=bool(done))

    def typed(points_policy: str, point_value_per_100: str, return_window_days: str,
              pending_points: str, outlet_floor_returns: str, kind: str, months: str,
              since: str, grace_days: str, reason: str) -> dict[str, str]:
        return {"points_policy": points_policy, "point_value_per_100": point_value_per_100,
                "return_window_days": return_window_days, "pending_points": pending_points,
                "outlet_floor_returns": outlet_floor_returns, "kind": kind, "months": months,
                "since": since, "grace_days": grace_days, "reason": reason}

    @routes.post("/programme/settings/preview")
    def settings_preview(request: Request, actor: Operator, points_policy: Text = "negative",
                         point_value_per_100: Text = "", return_window_days: Text = "",
                         pending_points: Text = "", outlet_floor_returns: Text = "",
                         kind: Text = "never", months: Text = "", since: Text = "",
                         grace_days: Text = "", reason: Reason = "") -> Response:
        form = typed(points_policy, point_value_per_100, return_window_days, pending_points,
                     outlet_floor_returns, kind, months, since, grace_days, reason)
        try:
            preview = previewed(form)
        except LoyaltyError as exc:
            return page(request, form, exc.status, f"{exc.message} [{exc.code}]")
        return page(request, form, preview=preview)

    @routes.post("/programme/settings")
    def settings_save(request: Request, actor: Operator, points_policy: Text = "negative",
                      point_value_per_100: Text = "", return_window_days: Text = "",
                      pending_points: Text = "", outlet_floor_returns: Text = "",
                      kind: Text = "never", months: Text = "", since: Text = "",
                      grace_days: Text = "", reason: Reason = "") -> Response:
        form = typed(points_policy, point_value_per_100, return_window_days, pending_points,
                     outlet_floor_returns, kind, months, since, grace_days, reason)
        try:
            if not reason.strip():
                raise InvalidRequest("Why: say why the settings change (it is kept in the "
                                     "audit trail)", field="reason")
            preview = previewed(form)
            admin.put_master(chain, PROGRAMME, preview["doc"], by=actor, reason=reason)
        except LoyaltyError as exc:
            return page(request, form, exc.status, f"{exc.message} [{exc.code}]")
        return see_other(request, "/programme/settings?done=1")

    return routes
