"""Staff roles: who may do what in HQ's back office and at an outlet's reception desk
(docs/backoffice.md, "Roles"). The one table both sides read: HQ's pages check it on every
request (hq/office/context.py), HQ's feed sends outlets only the accounts it lets use the
desk (hq/staff.py), and an outlet signs people in at the desk against it (agent/deskstaff.py).

| role | back office (HQ) | reception desk (outlets) |
|---|---|---|
| viewer | reads every page (reports, customers, invoices, the audit trail), changes nothing | no |
| operator | what a viewer may, and changes customers, the programme, payments, flags | no |
| administrator | what an operator may, and staff accounts and outlets | no |
| desk | nothing | signs in at every outlet's desk |

The back-office roles are a ladder (each may what the one below may); `desk` stands apart.
Reason: a desk account's password hash is copied to every outlet so the desk signs people
in offline, and whoever takes an outlet's PC can attack those hashes at leisure; no account
that opens HQ's back office is ever copied there, so such an attack gains at most the desk.

Must never: let a role not in this table open anything (an unknown role is refused).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from schema.errors import InvalidRequest


class Role(StrEnum):
    administrator = "administrator"
    operator = "operator"
    viewer = "viewer"
    desk = "desk"


@dataclass(frozen=True)
class Duties:
    office: int  # the rung on the back office's ladder; 0: no back-office page at all
    desk: bool  # may sign in at an outlet's reception desk (so the account is replicated)
    summary: str  # what the role is for, as the staff page says it


ROLES: dict[Role, Duties] = {
    Role.viewer: Duties(1, False, "reads every page of the back office, changes nothing"),
    Role.operator: Duties(2, False, "also changes customers, the programme, payments and flags"),
    Role.administrator: Duties(3, False, "also manages staff accounts and outlets"),
    Role.desk: Duties(0, True, "signs in at the outlets' reception desk only"),
}
OFFICE_ROLES = tuple(r for r in sorted(ROLES, key=lambda r: ROLES[r].office) if ROLES[r].office)
DESK_ROLES = frozenset(r for r, d in ROLES.items() if d.desk)

DESK_ACCOUNT_KIND = "desk_account"  # the kind of change HQ's feed sends a desk account as


def role_of(text: str) -> Role:
    """The role named `text`; InvalidRequest naming the roles otherwise."""
    try:
        return Role(text)
    except ValueError:
        raise InvalidRequest(f"no role {text!r}: choose one of {', '.join(Role)}") from None


def may(held: Role | str | None, needed: Role) -> bool:
    """Whether a back-office account holding `held` may use a page or form that needs
    `needed` (the ladder: administrator > operator > viewer; desk opens no page)."""
    if held is None or held not in ROLES:
        return False
    return ROLES[Role(held)].office >= ROLES[needed].office > 0


def may_use_desk(held: Role | str | None) -> bool:
    return held is not None and held in ROLES and ROLES[Role(held)].desk


class DeskAccount(BaseModel):
    """A staff account as HQ's feed sends it to outlets (kind `desk_account`, keyed by the
    username): never a password, only its scrypt hash. `session_gen` changes whenever HQ
    ends the account's sessions (a new password, a disabled account), so a desk can end its
    own sessions of the account too. Unknown fields are ignored: a newer HQ may add some."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    username: str = Field(min_length=1, max_length=64)
    role: Role
    password_hash: str = Field(min_length=1, max_length=400)
    session_gen: int = Field(ge=0)
