"""Issuing a smart card at the reception desk: our loyalty applet personalised with the
customer's club card number (hardware.loyaltycard's layout, written through a PC/SC reader by
hardware.pcsc), and its PIN if one is given.

Promises: only a blank card is written (a card already carrying a number is refused with
`card_not_blank`); the PIN goes onto the card and, hashed, into the customer's record.
Must never: log the PIN or the full card number.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent import customers
from hardware.loyaltycard import CardError
from hardware.pcsc import personalise as write_card
from schema.errors import Conflict, DeviceError, Forbidden, InvalidRequest, LoyaltyError, mask_card

if TYPE_CHECKING:
    from agent.outlet import Outlet

# What the card refused is the desk's to sort out (another card, the right PIN): a 4xx with
# the card's code. Anything else (pcscd down, no card, a card that does not answer) is 503.


class CardNotBlank(Conflict):
    """The card already holds a card number: personalise a blank card."""

    code = "card_not_blank"


class NotLoyaltyCard(Conflict):
    """The card has no loyalty application: use one of the chain's cards."""

    code = "not_loyalty_card"


class CardPinRequired(Forbidden):
    """The card has a PIN: give the current PIN to rewrite it."""

    code = "pin_required"


class CardPinWrong(Forbidden):
    """The card refused the PIN given."""

    code = "pin_wrong"


class CardPinBlocked(Forbidden):
    """The card's PIN is blocked."""

    code = "pin_blocked"


class CardIo(DeviceError):
    """The card answered something unexpected: try again or another card."""

    code = "card_io"


_BY_CODE: dict[str, type[LoyaltyError]] = {e.code: e for e in (
    CardNotBlank, NotLoyaltyCard, CardPinRequired, CardPinWrong, CardPinBlocked, CardIo)}
# every refusal of `personalise`, for the till API's document
REFUSALS: tuple[type[LoyaltyError], ...] = (*_BY_CODE.values(), DeviceError, InvalidRequest)


def personalise(outlet: Outlet, customer_id: str, reader: str, pin: str | None) -> dict[str, str]:
    row = outlet.db.one("SELECT value FROM identifiers WHERE customer_id = ? AND kind = 'card' "
                        "AND status = 'active'", (customer_id,))
    if row is None:
        raise InvalidRequest("this customer has no active club card number", customer=customer_id)
    card = str(row["value"])
    try:
        write_card(reader, card, pin=pin)
    except CardError as exc:
        refusal = _BY_CODE.get(exc.code)
        error = (refusal or DeviceError)(exc.message, reader=reader, card=mask_card(card))
        if refusal is None:
            error.code = exc.code  # a code the card layout adds later: still said as it is
        raise error from exc
    except Exception as exc:  # pcscd down, no reader, no card: the desk must see why
        raise DeviceError(f"cannot write the card in reader {reader!r}: {exc}", reader=reader) from exc
    if pin is not None:
        customers.set_pin(outlet, customer_id, pin)
    return {"customer_id": customer_id, "card_number": mask_card(card), "reader": reader}
