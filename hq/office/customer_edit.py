"""Editing a customer in the back office, for operators (docs/backoffice.md, "Editing a
customer"): every profile field, the category, promotion category and approved special
actions, the note, the status (approved or banned, with a reason), and identifiers
(add one; block one, report it lost, or make it active again), the picture (upload a
PNG or JPEG of at most 300x300), a lost club card replaced by a new one, and two profiles
of one person merged (a preview of both and of what moves, then a confirmation with a
reason).

Promises: a form is checked exactly as the till API checks a profile (`AdminProfileIn`,
built on schema/api.py `ProfileIn`: one declaration of the rules); a refused form is shown
again with what was typed and why, and changes nothing. A saved form is HQ's own fact made
through the same hq/admin.py operation as the admin API (so it reaches every outlet as
today's edits and bans do), audited in the same transaction with the member of staff, each
changed field before -> after, and the reason typed. Only fields that differ are sent: an
unchanged form records nothing.
"""

from typing import Annotated, Any, cast, get_args
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from hq import admin, audit
from hq.audit import Actor
from hq.office.context import Office, see_other
from schema import picture as pictures
from schema.adminapi import AdminProfileIn
from schema.customerstore import display_name
from schema.errors import Conflict, InvalidRequest, NotFound
from schema.events import IdentifierKind, IdentifierStatus
from schema.roles import Role

# The text fields of the form, in the order shown, with their labels.
TEXT_FIELDS = {"given_name": "Given name", "surname": "Surname", "name": "Name",
               "business_domain": "Business domain", "contact_person": "Contact person",
               "date_of_birth": "Date of birth", "address": "Address", "phone": "Phone",
               "fax": "Fax", "email": "E-mail", "room": "Room", "code": "Customer code",
               "preferences": "Preferences", "note": "Note",
               "promo_category": "Promotion category"}
LONG_FIELDS = ("preferences", "note")  # a textarea each
DONE = {"profile": "Saved: every outlet gets the change with its next pull.",
        "status": "Status changed: every outlet gets it with its next pull (a ban first).",
        "same": "Nothing to save: the form was the same as the customer.",
        "pin": "New PIN set: every outlet gets it with its next pull.",
        "identifier": "Identifier added: every outlet gets it with its next pull.",
        "identifier_status": "Identifier status changed: a blocked or lost one is refused at "
                             "every online outlet with its next pull.",
        "picture": "Picture saved: every outlet gets it with its next pull.",
        "card": "Card replaced: the lost one is refused at every online outlet with its next "
                "pull; the new one has the customer's points and history.",
        "merged": "Profiles merged: the duplicate's cards, points and history are this "
                  "customer's now, at every outlet with its next pull."}
IDENTIFIER_KINDS = get_args(IdentifierKind)
IDENTIFIER_STATUSES = get_args(IdentifierStatus)
Reason = Annotated[str, Form(max_length=500)]


def refusal(exc: ValidationError) -> InvalidRequest:
    """The first problem of a form as the person reads it: the field's label and why."""
    first = exc.errors()[0]
    name = str(first["loc"][0]) if first["loc"] else ""
    label = TEXT_FIELDS.get(name, name.replace("_", " "))
    return InvalidRequest(f"{label}: {first['msg']}", field=name or None)


def profile_changes(form: dict[str, Any], current: dict[str, Any],
                    actions: list[str]) -> dict[str, Any]:
    """The fields of `form` that differ from the customer (`current`), checked as the till
    API checks them; InvalidRequest naming the first field that is wrong. An empty box is
    the same as no value; the category is one of the programme's (hq/admin.py checks)."""
    changes: dict[str, Any] = {}
    for name in (*TEXT_FIELDS, "category"):
        typed = str(form.get(name, "")).strip() if name not in LONG_FIELDS \
            else str(form.get(name, "")).replace("\r\n", "\n")
        if typed != (current.get(name) or ""):
            changes[name] = typed
    consent = form.get("email_consent") == "on"
    if consent != bool(current.get("email_consent")):
        changes["email_consent"] = consent
    if sorted(actions) != sorted(current.get("approved_actions") or []):
        changes["approved_actions"] = sorted(actions)
    try:
        return AdminProfileIn.model_validate(changes).model_dump(exclude_unset=True)
    except ValidationError as exc:
        raise refusal(exc) from None


def router(office: Office) -> APIRouter:
    routes = office.router(role=Role.operator)
    chain = office.chain
    Operator = Annotated[Actor, Depends(office.form(Role.operator))]

    def edit_page(request: Request, customer_id: str, http_status: int = 200,
                  error: str | None = None, done: str | None = None,
                  typed: dict[str, Any] | None = None) -> HTMLResponse:
        view = admin.customer_view(chain, customer_id)
        shown = {**view, **(typed or {})}
        history = audit.search(chain, audit.Search(customer_id=customer_id), limit=20)
        return office.page(request, "customer_edit.html", http_status,
                           title=f"Edit {display_name(view) or customer_id}", c=view, f=shown,
                           fields=TEXT_FIELDS, long_fields=LONG_FIELDS,
                           categories=admin.master_docs(chain, "category"),
                           actions=admin.master_docs(chain, "action"), error=error,
                           done=DONE.get(done or ""), history=history,
                           has_picture=admin.has_picture(chain, customer_id))

    @routes.get("/customers/{customer_id}/edit")
    def customer_edit(request: Request, customer_id: str, done: str | None = None
                      ) -> HTMLResponse:
        return edit_page(request, customer_id, done=done)

    @routes.post("/customers/{customer_id}/profile")
    async def customer_profile(request: Request, customer_id: str, actor: Operator,
                               reason: Reason = "") -> Response:
        form = await request.form()
        typed = {k: v for k, v in form.items() if isinstance(v, str)}
        actions = [v for v in form.getlist("approved_actions") if isinstance(v, str)]

        def save() -> Response:
            current = admin.customer_view(chain, customer_id)
            try:
                changes = profile_changes(typed, current, actions)
                if not changes:
                    return see_other(request, f"/customers/{quote(customer_id)}/edit?done=same")
                admin.edit_customer(chain, customer_id, changes, by=actor, reason=reason)
            except InvalidRequest as exc:
                again = {**typed, "approved_actions": actions,
                         "email_consent": typed.get("email_consent") == "on"}
                return edit_page(request, customer_id, exc.status,
                                 f"{exc.message} [{exc.code}]", typed=again)
            return see_other(request, f"/customers/{quote(customer_id)}/edit?done=profile")

        return await run_in_threadpool(save)

    @routes.post("/customers/{customer_id}/status")
    def customer_status(request: Request, customer_id: str, actor: Operator,
                        status: Annotated[str, Form(max_length=20)], reason: Reason = ""
                        ) -> Response:
        try:
            if status not in ("approved", "banned"):
                raise InvalidRequest("Status: choose approved or banned", field="status")
            if status == "banned" and not reason.strip():
                raise InvalidRequest("Why: a ban needs its reason (outlets show it at the "
                                     "till)", field="reason")
            admin.set_status(chain, customer_id, status, reason.strip(), by=actor)
        except InvalidRequest as exc:
            return edit_page(request, customer_id, exc.status, f"{exc.message} [{exc.code}]")
        return see_other(request, f"/customers/{quote(customer_id)}/edit?done=status")

    @routes.post("/customers/{customer_id}/pin")
    def customer_pin(request: Request, customer_id: str, actor: Operator,
                     pin: Annotated[str, Form(max_length=20)],
                     again: Annotated[str, Form(max_length=20)], reason: Reason = ""
                     ) -> Response:
        try:
            if pin != again:
                raise InvalidRequest("New PIN: the two differ: type the same PIN twice",
                                     field="pin")
            admin.reset_pin(chain, customer_id, pin, by=actor, reason=reason)
        except InvalidRequest as exc:
            return edit_page(request, customer_id, exc.status, f"{exc.message} [{exc.code}]")
        return see_other(request, f"/customers/{quote(customer_id)}/edit?done=pin")

    @routes.post("/customers/{customer_id}/identifiers")
    def identifier_add(request: Request, customer_id: str, actor: Operator,
                       kind: Annotated[str, Form(max_length=20)],
                       value: Annotated[str, Form(max_length=200)], reason: Reason = ""
                       ) -> Response:
        typed = value.strip()
        try:
            if kind not in IDENTIFIER_KINDS:
                raise InvalidRequest(f"Kind: choose one of {', '.join(IDENTIFIER_KINDS)}",
                                     field="kind")
            if not typed:
                raise InvalidRequest("Value: type the card number, key or phone number",
                                     field="value")
            admin.add_identifier(chain, customer_id, cast(IdentifierKind, kind), typed,
                                 by=actor, reason=reason)
        except (InvalidRequest, Conflict) as exc:
            return edit_page(request, customer_id, exc.status, f"{exc.message} [{exc.code}]")
        return see_other(request, f"/customers/{quote(customer_id)}/edit?done=identifier")

    @routes.post("/customers/{customer_id}/identifiers/status")
    def identifier_status(request: Request, customer_id: str, actor: Operator,
                          kind: Annotated[str, Form(max_length=20)],
                          value: Annotated[str, Form(max_length=200)],
                          status: Annotated[str, Form(max_length=20)], reason: Reason = ""
                          ) -> Response:
        try:
            owned = {(i["kind"], i["value"])
                     for i in admin.customer_view(chain, customer_id)["identifiers"]}
            if (kind, value) not in owned:
                raise NotFound(f"this customer has no such {kind}")
            if status not in IDENTIFIER_STATUSES:
                raise InvalidRequest(f"Status: choose one of {', '.join(IDENTIFIER_STATUSES)}",
                                     field="status")
            admin.set_identifier_status(chain, cast(IdentifierKind, kind), value, status,
                                        by=actor, reason=reason)
        except (InvalidRequest, NotFound) as exc:
            return edit_page(request, customer_id, exc.status, f"{exc.message} [{exc.code}]")
        return see_other(request,
                         f"/customers/{quote(customer_id)}/edit?done=identifier_status")

    @routes.post("/customers/{customer_id}/picture")
    async def customer_picture(request: Request, customer_id: str, actor: Operator,
                               picture: UploadFile, reason: Reason = "") -> Response:
        raw = await picture.read(pictures.MAX_BYTES + 1)  # one byte over is enough to refuse

        def save() -> Response:
            try:
                admin.set_picture(chain, customer_id, raw, by=actor, reason=reason)
            except InvalidRequest as exc:
                return edit_page(request, customer_id, exc.status, f"{exc.message} [{exc.code}]")
            return see_other(request, f"/customers/{quote(customer_id)}/edit?done=picture")

        return await run_in_threadpool(save)

    @routes.post("/customers/{customer_id}/replace-card")
    def replace_card(request: Request, customer_id: str, actor: Operator,
                     lost: Annotated[str, Form(max_length=200)],
                     card: Annotated[str, Form(max_length=200)], reason: Reason = ""
                     ) -> Response:
        try:
            admin.replace_card(chain, customer_id, lost, card, by=actor, reason=reason)
        except (InvalidRequest, Conflict) as exc:
            return edit_page(request, customer_id, exc.status, f"{exc.message} [{exc.code}]")
        return see_other(request, f"/customers/{quote(customer_id)}/edit?done=card")

    def merge_page(request: Request, survivor: str, duplicate: str, http_status: int = 200,
                   error: str | None = None) -> HTMLResponse:
        try:
            merged = admin.resolve_customer(chain, duplicate)
            preview = admin.merge_preview(chain, survivor, merged)
        except (InvalidRequest, NotFound, Conflict) as exc:
            return edit_page(request, survivor, exc.status, f"{exc.message} [{exc.code}]")
        return office.page(request, "customer_merge.html", http_status,
                           title=f"Merge into {display_name(preview['survivor']) or survivor}",
                           p=preview, error=error)

    @routes.get("/customers/{customer_id}/merge")
    def customer_merge_preview(request: Request, customer_id: str,
                               duplicate: Annotated[str, Query(max_length=100)] = ""
                               ) -> HTMLResponse:
        return merge_page(request, customer_id, duplicate)

    @routes.post("/customers/{customer_id}/merge")
    def customer_merge(request: Request, customer_id: str, actor: Operator,
                       merged: Annotated[str, Form(max_length=100)], reason: Reason = ""
                       ) -> Response:
        try:
            admin.merge_customers(chain, customer_id, merged, by=actor, reason=reason)
        except (InvalidRequest, NotFound, Conflict) as exc:
            return merge_page(request, customer_id, merged, exc.status,
                              f"{exc.message} [{exc.code}]")
        return see_other(request, f"/customers/{quote(customer_id)}/edit?done=merged")

    return routes
