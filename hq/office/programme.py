"""The programme in the back office (docs/backoffice.md, "The programme"): every kind of
master data as HQ holds it (categories, promotion categories, special action sales,
gifts, category rules...) for every role, and for operators the special action sale
editor: a form, then a preview of what saving will do (each field before -> after), then
the save.

Promises: the form is checked as the admin API checks master data (schema/masterdata.py
`ActionDoc`, strictly, through hq/admin.py), a refused form shows why with what was typed
and changes nothing; a preview changes nothing; a save is `hq.admin.put_master` (as the
admin API's PUT: the document reaches every outlet as today's master data) audited with
the document before -> after and the reason. Dates are UTC days: valid from the start of
the first day to the end of the last.
"""

from collections import Counter
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from hq import admin, audit, categories
from hq.audit import Actor
from hq.office.context import Office, see_other
from schema.errors import InvalidRequest
from schema.masterdata import DOCS, CategoryRuleDoc
from schema.roles import Role
from web.office import money_input

LABELS = {"action_id": "Code", "name": "Name", "valid_from": "Valid from",
          "valid_to": "Valid to", "discount_bp": "Discount %", "skus": "SKUs",
          "divisions": "Divisions", "categories": "Categories",
          "customer_codes": "Customer codes", "stackable": "Stacks with other discounts",
          "category": "Category", "min_turnover": "Minimum turnover",
          "window_days": "Window (days)"}
Text = Annotated[str, Form(max_length=2_000)]
Reason = Annotated[str, Form(max_length=500)]


def _list(text: str) -> list[str]:
    return [part.strip() for part in text.replace("\n", ",").split(",") if part.strip()]


def _basis_points(text: str) -> int:
    """A percentage typed by a person (`10`, `12.5`, `7,5`) in basis points (1,250)."""
    try:
        value = Decimal(text.strip().replace(",", ".").rstrip("%").strip())
    except InvalidOperation:
        raise InvalidRequest("Discount %: type a percentage such as 10 or 12.5",
                             field="discount_bp") from None
    if not value.is_finite() or value * 100 != int(value * 100):
        raise InvalidRequest("Discount %: at most two decimals", field="discount_bp")
    return int(value * 100)


def percent(bp: int) -> str:
    """Basis points as the percentage a person types: 2000 -> "20", 1250 -> "12.5"."""
    text = f"{Decimal(bp) / 100:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def action_doc(form: dict[str, Any]) -> dict[str, Any]:
    """The special action sale a form describes, as the master data document."""
    days = {name: str(form.get(name, "")).strip() for name in ("valid_from", "valid_to")}
    for name, day in days.items():
        if len(day) != 10:
            raise InvalidRequest(f"{LABELS[name]}: choose a day (YYYY-MM-DD)", field=name)
    return {"action_id": str(form.get("action_id", "")).strip(),
            "name": str(form.get("name", "")).strip(),
            "valid_from": f"{days['valid_from']}T00:00:00Z",
            "valid_to": f"{days['valid_to']}T23:59:59Z",
            "discount_bp": _basis_points(str(form.get("discount", ""))),
            "skus": _list(str(form.get("skus", ""))),
            "divisions": _list(str(form.get("divisions", ""))),
            "categories": list(form.get("categories") or []),
            "customer_codes": _list(str(form.get("customer_codes", ""))),
            "stackable": bool(form.get("stackable"))}


def preview(chain: Any, form: dict[str, Any]) -> dict[str, Any]:
    """`hq.admin.master_change` of the form's action; InvalidRequest naming the field."""
    try:
        return admin.master_change(chain, "action", action_doc(form))
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else ""
        raise InvalidRequest(f"{LABELS.get(name, name)}: {first['msg']}",
                             field=name or None) from None


def shown(name: str, value: Any) -> str:
    """A field of a preview as a person reads it: a discount as a percentage, a list as
    its items ('every' when empty: the sale is not narrowed by it)."""
    if value is None:
        return "-"
    if name.endswith("_bp") and isinstance(value, int):
        return f"{percent(value)} %"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "every"
    return audit.shown(name, value)


def form_of(doc: dict[str, Any]) -> dict[str, Any]:
    """The form as it shows a stored action."""
    return {"action_id": doc["action_id"], "name": doc["name"],
            "valid_from": str(doc["valid_from"])[:10], "valid_to": str(doc["valid_to"])[:10],
            "discount": percent(doc["discount_bp"]),
            "skus": ", ".join(doc.get("skus", [])),
            "divisions": ", ".join(doc.get("divisions", [])),
            "categories": doc.get("categories", []),
            "customer_codes": ", ".join(doc.get("customer_codes", [])),
            "stackable": doc.get("stackable", False)}


def rule_doc(form: dict[str, Any]) -> dict[str, Any]:
    """The category rule a form describes; the turnover is money typed by a person."""
    days = str(form.get("window_days", "")).strip()
    if not days.isdigit():
        raise InvalidRequest("Window (days): type a whole number of days", field="window_days")
    return {"category": str(form.get("category", "")).strip(),
            "min_turnover": money_input(str(form.get("min_turnover", "")), "Minimum turnover"),
            "window_days": int(days)}


def rule_preview(chain: Any, form: dict[str, Any], today: Any) -> dict[str, Any]:
    """What saving the form's rule does to the rule (before -> after) and, by a dry run of
    hq/categories.py over today's figures, to customers: `moves`, how many move from each
    category to each other, largest first."""
    try:
        change = admin.master_change(chain, "category_rule", rule_doc(form))
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else ""
        raise InvalidRequest(f"{LABELS.get(name, name)}: {first['msg']}",
                             field=name or None) from None
    if change["after"]["category"] not in admin.master_docs(chain, "category"):
        raise InvalidRequest("Category: choose one of the programme's categories",
                             field="category")
    ordered = categories.with_rule(chain, CategoryRuleDoc.model_validate(change["after"]))
    counted = Counter((old or "-", new) for _, old, new in categories.moves(chain, today, ordered))
    change["moves"] = counted.most_common()
    return change


# The kinds edited field by field (a special action sale and a category rule have their
# own forms): each field is text, a percentage (`_bp`), money or a whole number.
EDITED = {"category": "Category", "promo_category": "Promotion category", "gift": "Gift"}
MONEY_FIELDS = {"credit_limit", "floor_credit", "floor_returns"}
FIELD_LABELS = {"code": "Code", "sku": "SKU", "name": "Name", "discount_bp": "Discount %",
                "points_per_100": "Points per 100.00", "credit_limit": "Credit limit",
                "floor_points": "Offline floor: points", "floor_credit": "Offline floor: credit",
                "floor_returns": "Offline floor: refunds of other outlets' sales",
                "points_bonus_bp": "Points bonus %", "points_cost": "Points value"}


def doc_fields(kind: str) -> list[str]:
    return list(DOCS[kind].model_fields)


def typed_doc(kind: str, form: dict[str, Any]) -> dict[str, Any]:
    """The document of `kind` a form describes, each field read as people type it."""
    doc: dict[str, Any] = {}
    for name in doc_fields(kind):
        text = str(form.get(name, "")).strip()
        label = FIELD_LABELS.get(name, name)
        field = DOCS[kind].model_fields[name]
        if not text and not field.is_required():
            doc[name] = field.default  # left empty: the document's default (e.g. 0)
        elif field.annotation is str:
            doc[name] = text
        elif name in MONEY_FIELDS:
            doc[name] = money_input(text, label)
        elif name.endswith("_bp"):
            try:
                doc[name] = _basis_points(text)
            except InvalidRequest:
                raise InvalidRequest(f"{label}: type a percentage such as 10 or 12.5",
                                     field=name) from None
        elif text.isdigit():
            doc[name] = int(text)
        else:
            raise InvalidRequest(f"{label}: type a whole number", field=name)
    return doc


def doc_form(kind: str, doc: dict[str, Any]) -> dict[str, str]:
    """The form as it shows a stored document."""
    out = {}
    for name in doc_fields(kind):
        value = doc.get(name, "")
        if name in MONEY_FIELDS:
            out[name] = f"{Decimal(value) / 100:.2f}"
        elif name.endswith("_bp"):
            out[name] = percent(int(value))
        else:
            out[name] = str(value)
    return out


def doc_preview(chain: Any, kind: str, form: dict[str, Any]) -> dict[str, Any]:
    try:
        return admin.master_change(chain, kind, typed_doc(kind, form))
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else ""
        raise InvalidRequest(f"{FIELD_LABELS.get(name, name)}: {first['msg']}",
                             field=name or None) from None


def doc_shown(name: str, value: Any) -> str:
    if name in MONEY_FIELDS:
        return audit.shown("amount", value)
    return shown(name, value)


async def typed_form(request: Request) -> dict[str, Any]:
    """What a form holds as typed (the categories ticked as a list)."""
    form = await request.form()
    typed: dict[str, Any] = {k: v for k, v in form.items() if isinstance(v, str)}
    typed["categories"] = [v for v in form.getlist("categories") if isinstance(v, str)]
    return typed


def router(office: Office) -> APIRouter:
    routes = office.router(role=Role.viewer)
    chain = office.chain
    Operator = Annotated[Actor, Depends(office.form(Role.operator))]
    operator_page = [Depends(office.requires(Role.operator))]

    def action_page(request: Request, form: dict[str, Any], http_status: int = 200,
                    error: str | None = None, change: dict[str, Any] | None = None
                    ) -> HTMLResponse:
        return office.page(request, "programme_action.html", http_status,
                           title="Special action sale", f=form, error=error, change=change,
                           labels=LABELS, categories=admin.master_docs(chain, "category"),
                           shown=shown)

    def rule_page(request: Request, form: dict[str, Any], http_status: int = 200,
                  error: str | None = None, change: dict[str, Any] | None = None
                  ) -> HTMLResponse:
        return office.page(request, "programme_rule.html", http_status,
                           title="Category rule", f=form, error=error, change=change,
                           labels=LABELS, categories=admin.master_docs(chain, "category"),
                           shown=lambda name, value: audit.shown(
                               "amount" if name == "min_turnover" else name, value))

    @routes.get("/programme/rules/new", dependencies=operator_page)
    def rule_new(request: Request) -> HTMLResponse:
        return rule_page(request, {"window_days": "365"})

    @routes.post("/programme/rules/preview")
    def rule_preview_page(request: Request, actor: Operator,
                          typed: Annotated[dict[str, Any], Depends(typed_form)]) -> Response:
        try:
            change = rule_preview(chain, typed, office.clock().date())
        except InvalidRequest as exc:
            return rule_page(request, typed, exc.status, f"{exc.message} [{exc.code}]")
        return rule_page(request, typed, change=change)

    @routes.post("/programme/rules")
    def rule_save(request: Request, actor: Operator,
                  typed: Annotated[dict[str, Any], Depends(typed_form)],
                  reason: Reason = "") -> Response:
        today = office.clock().date()
        try:
            change = rule_preview(chain, typed, today)
            admin.put_master(chain, "category_rule", change["after"], by=actor, reason=reason)
        except InvalidRequest as exc:
            return rule_page(request, typed, exc.status, f"{exc.message} [{exc.code}]")
        if typed.get("apply"):
            categories.assign(chain, today)
        return see_other(request, "/programme?done=rule")

    def doc_page(request: Request, kind: str, form: dict[str, Any], http_status: int = 200,
                 error: str | None = None, change: dict[str, Any] | None = None
                 ) -> HTMLResponse:
        if kind not in EDITED:
            return office.page(request, "programme_doc.html", 404, title="Programme",
                               kind=kind, what="", f={}, fields=[], labels=FIELD_LABELS,
                               error=f"no editor for {kind} [not_found]", change=None,
                               shown=doc_shown)
        return office.page(request, "programme_doc.html", http_status, title=EDITED[kind],
                           kind=kind, what=EDITED[kind], f=form, fields=doc_fields(kind),
                           labels=FIELD_LABELS, error=error, change=change, shown=doc_shown)

    @routes.get("/programme/doc/{kind}/new", dependencies=operator_page)
    def doc_new(request: Request, kind: str) -> HTMLResponse:
        return doc_page(request, kind, {})

    @routes.get("/programme/doc/{kind}/edit/{key}", dependencies=operator_page)
    def doc_edit(request: Request, kind: str, key: str) -> HTMLResponse:
        doc = admin.master_docs(chain, kind).get(key) if kind in EDITED else None
        if doc is None:
            return doc_page(request, kind, {}, 404, f"no {kind} {key} [not_found]")
        return doc_page(request, kind, doc_form(kind, doc))

    @routes.post("/programme/doc/{kind}/preview")
    def doc_preview_page(request: Request, kind: str, actor: Operator,
                         typed: Annotated[dict[str, Any], Depends(typed_form)]) -> Response:
        if kind not in EDITED:
            return doc_page(request, kind, typed)
        try:
            change = doc_preview(chain, kind, typed)
        except InvalidRequest as exc:
            return doc_page(request, kind, typed, exc.status, f"{exc.message} [{exc.code}]")
        return doc_page(request, kind, typed, change=change)

    @routes.post("/programme/doc/{kind}/save")
    def doc_save(request: Request, kind: str, actor: Operator,
                 typed: Annotated[dict[str, Any], Depends(typed_form)],
                 reason: Reason = "") -> Response:
        if kind not in EDITED:
            return doc_page(request, kind, typed)
        try:
            change = doc_preview(chain, kind, typed)
            admin.put_master(chain, kind, change["after"], by=actor, reason=reason)
        except InvalidRequest as exc:
            return doc_page(request, kind, typed, exc.status, f"{exc.message} [{exc.code}]")
        return see_other(request, f"/programme?done={kind}")

    @routes.get("/programme")
    def programme(request: Request, done: str | None = None) -> HTMLResponse:
        return office.page(request, "programme.html", title="Programme",
                           kinds={kind: admin.master_docs(chain, kind) for kind in DOCS},
                           done=done in ("action", "rule", *EDITED), edited=EDITED)

    @routes.get("/programme/actions/new", dependencies=operator_page)
    def action_new(request: Request) -> HTMLResponse:
        return action_page(request, {"categories": []})

    @routes.get("/programme/actions/{key}", dependencies=operator_page)
    def action_edit(request: Request, key: str) -> HTMLResponse:
        doc = admin.master_docs(chain, "action").get(key)
        if doc is None:
            return action_page(request, {"categories": []}, 404,
                               f"no special action sale {key} [not_found]")
        return action_page(request, form_of(doc))

    @routes.post("/programme/actions/preview")
    def action_preview(request: Request, actor: Operator,
                       typed: Annotated[dict[str, Any], Depends(typed_form)]) -> Response:
        try:
            change = preview(chain, typed)
        except InvalidRequest as exc:
            return action_page(request, typed, exc.status, f"{exc.message} [{exc.code}]")
        return action_page(request, typed, change=change)

    @routes.post("/programme/actions")
    def action_save(request: Request, actor: Operator,
                    typed: Annotated[dict[str, Any], Depends(typed_form)],
                    reason: Reason = "") -> Response:
        try:
            change = preview(chain, typed)
            admin.put_master(chain, "action", change["after"], by=actor, reason=reason)
        except InvalidRequest as exc:
            return action_page(request, typed, exc.status, f"{exc.message} [{exc.code}]")
        return see_other(request, "/programme?done=action")

    return routes
