"""The error hierarchy: every refusal the product makes, with a stable code.

A `LoyaltyError` carries a snake_case `code` that integrators rely on (see
docs/design.md, "Names that are fixed"), a human message that says what to do, and context fields
(card, outlet, port, ...) that are safe to log: card numbers are masked by `mask_card`
before they get here. Errors are turned into HTTP answers and CLI messages in exactly
one place each (`web.httperrors`, `loyalty.cli`); nothing else formats them.
"""

from __future__ import annotations

from typing import Any

MASK = "****"


def mask_card(value: str | None) -> str:
    """Masks a card number or track for logs, receipts and screens: `"****0015"`.

    The one form everywhere: four stars and the last 4 characters, whatever the length (a
    fixed width tells nothing of the number's length and fits a 40-column receipt). A value
    of 4 characters or fewer is all stars. (hardware/reads.py keeps a copy of this rule,
    since hardware/ imports nothing of the project; a test keeps the two the same.)"""
    if not value:
        return ""
    value = str(value)
    return MASK if len(value) <= 4 else MASK + value[-4:]


class LoyaltyError(Exception):
    """Base of every error the product reports. Subclasses fix `code` and `status`."""

    code = "internal_error"
    status = 500

    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.context = {k: v for k, v in context.items() if v is not None}

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.context:
            body["context"] = self.context
        return body

    def __str__(self) -> str:
        extra = ", ".join(f"{k}={v}" for k, v in self.context.items())
        return f"{self.code}: {self.message}" + (f" ({extra})" if extra else "")


def describe(exc: BaseException) -> str:
    """One line for a log or a stored status: `code: message (context)`, the code once.

    A `LoyaltyError` already says its code (`__str__`); anything else is named by its type.
    Callers must not prepend the code themselves (that printed it twice)."""
    if isinstance(exc, LoyaltyError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


class InvalidRequest(LoyaltyError):
    code = "invalid_request"
    status = 422


class Unauthorized(LoyaltyError):
    code = "unauthorized"
    status = 401


class Forbidden(LoyaltyError):
    code = "forbidden"
    status = 403


class RoleRequired(Forbidden):
    """A member of staff asked for a page or form their role does not open
    (schema/roles.py); context `role`, the role it needs."""

    code = "role_required"


class LoginFailed(Unauthorized):
    """A staff login with a wrong username or password (which of the two is not said)."""

    code = "login_failed"


class LoginLocked(LoyaltyError):
    """Too many failed logins for one username in a short time: wait, then try again."""

    code = "login_locked"
    status = 429


class NotFound(LoyaltyError):
    code = "not_found"
    status = 404


class Conflict(LoyaltyError):
    code = "conflict"
    status = 409


class DatabaseInUse(Conflict):
    """Another live process serves this database (schema.dblock): one server per file."""

    code = "database_in_use"


class PayloadTooLarge(LoyaltyError):
    code = "payload_too_large"
    status = 413


# --- identification -------------------------------------------------------------------


class CardUnknown(NotFound):
    code = "card_unknown"


class CardBanned(Forbidden):
    """The customer is banned: refused everywhere, at identification and at sale."""

    code = "card_banned"


class CardBlocked(Forbidden):
    code = "card_blocked"


class CardLost(Forbidden):
    code = "card_lost"


class CustomerUnknown(NotFound):
    code = "customer_unknown"


class CustomerMerged(Conflict):
    """A profile merged into another (docs/backoffice.md, "Merging two profiles"): it
    cannot be merged again, merged into, or sold to; context `survivor`, the profile that
    holds its cards, points and history now."""

    code = "customer_merged"


class CardInUse(Conflict):
    """A replacement card whose number already belongs to a customer (this one or
    another): take another card; nothing was changed."""

    code = "card_in_use"


class PinLocked(Forbidden):
    code = "pin_locked"


class PinInvalid(Unauthorized):
    code = "pin_invalid"


# --- selling --------------------------------------------------------------------------


class QuoteUnknown(NotFound):
    code = "quote_unknown"


class QuoteExpired(Conflict):
    code = "quote_expired"


class PaymentMismatch(InvalidRequest):
    code = "payment_mismatch"


class CreditLimitExceeded(LoyaltyError):
    code = "credit_limit_exceeded"
    status = 402


class CreditBlocked(Forbidden):
    code = "credit_blocked"


class InsufficientPoints(LoyaltyError):
    code = "insufficient_points"
    status = 402


class OfflineLimitExceeded(LoyaltyError):
    """Spending beyond what HQ last confirmed plus the card's offline floor limit."""

    code = "offline_limit_exceeded"
    status = 402


class GiftUnknown(NotFound):
    code = "gift_unknown"


class OutOfStock(Conflict):
    code = "out_of_stock"


class TransferExceedsStock(OutOfStock):
    """A stock transfer ordered at HQ of more than HQ knows the sending outlet holds
    (what its facts have told HQ so far): nothing is recorded."""

    code = "transfer_exceeds_stock"


class Overpayment(Conflict):
    """A payment larger than what is still owed on the invoice (409: it conflicts with the
    invoice as it stands; re-read what is left to pay). Nothing is recorded."""

    code = "overpayment"


class IdempotencyConflict(Conflict):
    """The same Idempotency-Key was sent with a different request body."""

    code = "idempotency_conflict"


class CardRangeExhausted(LoyaltyError):
    """Every card number of this outlet's range is issued: HQ must give it another range."""

    code = "card_range_exhausted"
    status = 503


class NotReady(LoyaltyError):
    """A chain outlet that has not completed its first sync with HQ yet (no programme, no
    card number range): it cannot register customers until then."""

    code = "not_ready"
    status = 503


# --- sync and devices -----------------------------------------------------------------


class SyncError(LoyaltyError):
    code = "sync_failed"
    status = 502


class ProtocolError(InvalidRequest):
    """A malformed, oversized or unknown-version sync message."""

    code = "protocol_error"


class OutletMismatch(Forbidden):
    """An outlet pushed events that claim another outlet."""

    code = "outlet_mismatch"


class SyncGap(Conflict):
    """A push skipped events HQ has not seen: resend from `expected`."""

    code = "sync_gap"


class SeqReused(Conflict):
    """A pushed event's sequence number belongs to another event at HQ: this outlet's
    database went back (restored from a backup); its newer facts are renumbered."""

    code = "seq_reused"


class SnapshotCorrupt(InvalidRequest):
    """A snapshot file that is not one, is cut short, or fails its SHA-256 check: nothing
    of it is used; download or copy it again."""

    code = "snapshot_corrupt"


class SnapshotEpochMismatch(Conflict):
    """A snapshot made by HQ in another epoch than the one this outlet follows (HQ was
    restored from a backup since): it is refused; take a snapshot of the current HQ."""

    code = "snapshot_epoch_mismatch"


class SnapshotIncompatible(Conflict):
    """A snapshot with outlet tables of a newer version than this outlet's software."""

    code = "snapshot_incompatible"


class DirectoryNotEmpty(Conflict):
    """A command that fills a directory of its own (`loyalty demo --keep DIR`) was given one
    that exists and holds something: nothing is written there."""

    code = "directory_not_empty"


class OutletNotEmpty(Conflict):
    """A snapshot is applied only to a new or wiped outlet: this one holds facts of its
    own, which a snapshot would lose (it catches up by pulling instead)."""

    code = "outlet_not_empty"


class TargetNotEmpty(Conflict):
    """`loyalty hq migrate` copies HQ only into an empty database: the one given holds rows
    already (named in the message), which a copy would mix with the chain's. Nothing was
    written."""

    code = "target_not_empty"


class MigrationMismatch(LoyaltyError):
    """`loyalty hq migrate` found the PostgreSQL copy different from the SQLite file (a
    table's rows, sums or the ledger fold), or could not copy a table's rows: the message
    names the table. Nothing was committed."""

    code = "migration_mismatch"
    status = 500


class DeviceError(LoyaltyError):
    code = "device_error"
    status = 503


class ReadError(InvalidRequest):
    """A card read that cannot be parsed: a garbled swipe, a bad check digit."""

    code = "read_error"


class StorageUnavailable(LoyaltyError):
    """The database cannot be written or read: disk full, I/O error, read-only file, folder
    or disk, damaged file (schema.database.storage_error). Nothing was recorded; the
    message says what a supervisor can do; `context.fault` names the kind."""

    code = "storage_unavailable"
    status = 503


class ConfigError(LoyaltyError):
    code = "config_error"
    status = 500


class MailNotConfigured(LoyaltyError):
    """HQ was asked to mail customers (a newsletter) before its mail settings are complete:
    nothing was queued."""

    code = "mail_not_configured"
    status = 409


# --- banking --------------------------------------------------------------------------


class InvalidStatement(InvalidRequest):
    """A bank statement file that cannot be read as camt.053 or MT940: the message names
    what is wrong and where (statement, entry, tag); nothing of the file is used."""

    code = "invalid_statement"


class InvalidCreditorReference(InvalidRequest):
    """Not an ISO 11649 RF creditor reference: wrong shape or check digits that do not
    match (a mistyped reference)."""

    code = "invalid_creditor_reference"


# --- the way back: returns, voids, receipts (schema/reversal.py, docs/programme.md) --------


class ReturnExceedsSale(Conflict):
    """A return of more than was sold minus what was already returned (or of an item the
    sale did not have, or of more gifts than were handed out). Nothing is recorded."""

    code = "return_exceeds_sale"


class AlreadyReversed(Conflict):
    """A void of a sale that is voided or fully returned already. Nothing is recorded."""

    code = "already_reversed"


class ReturnWindowClosed(Forbidden):
    """A return or void of a sale older than the programme's `return_window_days` (the sale
    row's time at its own outlet, the receipt code's time elsewhere), without a supervisor's
    approval (`approved_by`). Nothing is recorded (docs/programme.md, "The return window")."""

    code = "return_window_closed"


class SupervisorRequired(Forbidden):
    """Taking back a return's points would leave the customer below zero and the programme
    sends that decision to a supervisor (docs/programme.md, "Points already spent")."""

    code = "supervisor_required"


class ReceiptInvalid(InvalidRequest):
    """A receipt reference or receipt code that cannot be read: a typo the check character
    catches, a damaged scan, a code of another version. Nothing is recorded."""

    code = "receipt_invalid"


class SaleUnknown(NotFound):
    """A return or void names a sale this outlet does not hold: another outlet's, or one not
    yet in this outlet's replica. A return then needs the receipt's code (a void is only
    ever of this outlet's own sale). Nothing is recorded."""

    code = "sale_unknown"


class RedemptionUnknown(NotFound):
    """A gift return names a hand-out this outlet did not make (gifts go back where they
    were handed out). Nothing is recorded."""

    code = "redemption_unknown"
