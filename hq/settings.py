"""HQ's own settings: the account customers pay into, the SMTP server, the public address.

Kept in HQ's database (table `hq_settings`, one row per key), never in master data: master
data replicates to every outlet, and an SMTP password has no business on a till. In the
database rather than a file because every `loyalty hq` command already names the database
(`--db PATH`) and nothing else: the server, `invoice-pdf` and `invoices-to-post` all see the
same payee without a second file to keep in step. Keys (docs/invoices.md, "Settings"):
`payee.name|iban|bic|country`, `smtp.host|port|user|password|ca_file`, `mail.from`,
`mail.public_url`, `mail.interval`. Each value is checked when it is set (an IBAN's check
digits, a port's range, a CA file that exists) with `invalid_request` naming the key.
Promises: a secret (the SMTP password, the unsubscribe signing key) is never returned by
`shown`, never in a repr, never logged. Must never: publish a setting to outlets.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.headerregistry import Address
from email.utils import getaddresses
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError

from banking.payee import Payee, bic, iban
from hq.chain import Chain
from schema.errors import InvalidRequest

DEFAULT_SMTP_PORT = 587  # message submission (RFC 6409), STARTTLS
DEFAULT_INTERVAL_S = 15
_UNSUBSCRIBE_KEY = "secret.unsubscribe_key"


def _text(value: str) -> str:
    if not value.strip() or len(value) > 500 or any(c in value for c in "\r\n\0"):
        raise InvalidRequest("a setting is one line of 1 to 500 characters")
    return value.strip()


def _country(value: str) -> str:
    value = value.strip().upper()
    if len(value) != 2 or not value.isascii() or not value.isalpha():
        raise InvalidRequest("the ISO 3166 two-letter country code, e.g. SI or DE")
    return value


def _port(value: str) -> str:
    if not value.strip().isdigit() or not 1 <= int(value) <= 65535:
        raise InvalidRequest("a TCP port, 1 to 65535 (submission is 587)")
    return str(int(value))


def _interval(value: str) -> str:
    if not value.strip().isdigit() or not 1 <= int(value) <= 3600:
        raise InvalidRequest("seconds between two runs of the mail worker, 1 to 3600")
    return str(int(value))


def _ca_file(value: str) -> str:
    path = Path(value.strip())
    if not path.is_file():
        raise InvalidRequest(f"{value.strip()!r} is not a file: give the PEM file of the CA"
                             " that signed the SMTP server's certificate")
    return str(path.resolve())


def _sender(value: str) -> str:
    return str(sender_address(_text(value)))


def _url(value: str) -> str:
    value = _text(value).rstrip("/")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
        raise InvalidRequest("HQ's address as customers reach it, e.g. https://club.example.com"
                             " (unsubscribe links point there)")
    return value


@dataclass(frozen=True)
class Setting:
    check: Callable[[str], str]
    help: str
    secret: bool = False


SETTINGS: dict[str, Setting] = {
    "payee.name": Setting(_text, "the beneficiary's name on invoices and transfers"),
    "payee.iban": Setting(iban, "the account customers pay invoices into"),
    "payee.bic": Setting(bic, "its bank's BIC (optional within the SEPA area)"),
    "payee.country": Setting(_country, "the chain's country (ISO 3166, two letters)"),
    "smtp.host": Setting(_text, "the SMTP submission server"),
    "smtp.port": Setting(_port, f"its port [{DEFAULT_SMTP_PORT}]"),
    "smtp.user": Setting(_text, "the account HQ logs in with"),
    "smtp.password": Setting(_text, "its password (give it on stdin)", secret=True),
    "smtp.ca_file": Setting(_ca_file, "a PEM file of CAs to trust [the system's]"),
    "mail.from": Setting(_sender, "the sender, e.g. Club <club@example.com>"),
    "mail.public_url": Setting(_url, "HQ's address for customers (unsubscribe links)"),
    "mail.interval": Setting(_interval, f"seconds between mail runs [{DEFAULT_INTERVAL_S}]"),
}


def sender_address(text: str) -> Address:
    """`Club <club@example.com>` or `club@example.com` as an Address, or `invalid_request`."""
    found = getaddresses([text])
    if len(found) != 1 or "@" not in found[0][1] or text.count("@") != 1:
        raise InvalidRequest(f"{text!r} is not one e-mail address (club@example.com or"
                             " Club <club@example.com>)")
    name, addr = found[0]
    user, _, domain = addr.rpartition("@")
    if not user or not domain or not addr.isascii() or " " in addr:
        raise InvalidRequest(f"{text!r} is not one e-mail address")
    return Address(display_name=name, username=user, domain=domain)


def read(conn: sqlite3.Connection) -> dict[str, str]:
    """Every setting as stored (secrets included: for this module's readers only)."""
    return {row[0]: row[1] for row in conn.execute("SELECT key, value FROM hq_settings")}


def change(chain: Chain, values: Mapping[str, str | None]) -> None:
    """Sets (or with None / blank, removes) settings, all or none: each value is checked
    first and a bad one changes nothing."""
    checked: dict[str, str | None] = {}
    for key, value in values.items():
        setting = SETTINGS.get(key)
        if setting is None:
            raise InvalidRequest(f"no setting {key!r}: one of {', '.join(SETTINGS)}")
        if value is None or not value.strip():
            checked[key] = None
            continue
        try:
            checked[key] = setting.check(value)
        except InvalidRequest as error:
            raise InvalidRequest(f"{key}: {error.message}", setting=key) from None
    with chain.db.write() as conn:
        for key, value in checked.items():
            if value is None:
                conn.execute("DELETE FROM hq_settings WHERE key = ?", (key,))
            else:
                conn.execute("INSERT INTO hq_settings (key, value) VALUES (?, ?) ON CONFLICT "
                             "(key) DO UPDATE SET value = excluded.value", (key, value))


def shown(chain: Chain) -> dict[str, str]:
    """Every setting for a person to read: secrets only as `(set)`, missing ones as `-`."""
    with chain.db.read() as conn:
        stored = read(conn)
    return {key: ("(set)" if setting.secret else stored[key]) if key in stored else "-"
            for key, setting in SETTINGS.items()}


def payee(conn: sqlite3.Connection) -> Payee | None:
    """The account invoices name, once name, IBAN and country are set (else None: the
    invoice shows the RF reference but no bank details and no QR code)."""
    stored = read(conn)
    if not all(stored.get(f"payee.{k}") for k in ("name", "iban", "country")):
        return None
    try:
        return Payee(name=stored["payee.name"], iban=stored["payee.iban"],
                     bic=stored.get("payee.bic", ""), country=stored["payee.country"])
    except ValidationError:  # checked when set; a hand-edited row is not printed
        return None


class Smtp(BaseModel):
    """Where and how HQ submits mail: STARTTLS and a login, always."""

    model_config = ConfigDict(frozen=True)

    host: str
    port: int = DEFAULT_SMTP_PORT
    user: str
    password: SecretStr
    ca_file: str | None = None


class Mail(BaseModel):
    model_config = ConfigDict(frozen=True)

    sender: str  # as set: `Club <club@example.com>`
    public_url: str
    interval_s: int = DEFAULT_INTERVAL_S

    @property
    def domain(self) -> str:
        """The sender's domain: the right-hand side of every Message-ID HQ makes."""
        return sender_address(self.sender).domain


def smtp(conn: sqlite3.Connection) -> Smtp | None:
    """The SMTP server, once host, user and password are set (else None: mail waits)."""
    stored = read(conn)
    if not all(stored.get(f"smtp.{k}") for k in ("host", "user", "password")):
        return None
    return Smtp(host=stored["smtp.host"], port=int(stored.get("smtp.port", DEFAULT_SMTP_PORT)),
                user=stored["smtp.user"], password=SecretStr(stored["smtp.password"]),
                ca_file=stored.get("smtp.ca_file"))


def mail(conn: sqlite3.Connection) -> Mail | None:
    """Sender and public address, once both are set (else None: no notice is made)."""
    stored = read(conn)
    if not stored.get("mail.from") or not stored.get("mail.public_url"):
        return None
    return Mail(sender=stored["mail.from"], public_url=stored["mail.public_url"],
                interval_s=int(stored.get("mail.interval", DEFAULT_INTERVAL_S)))


def interval_s(chain: Chain) -> int:
    with chain.db.read() as conn:
        found = mail(conn)
    return found.interval_s if found else DEFAULT_INTERVAL_S


def unsubscribe_key(conn: sqlite3.Connection, make: bool = False) -> bytes | None:
    """The key unsubscribe links are signed with; `make`: made on first use (inside the
    caller's write transaction). Never shown."""
    row = conn.execute("SELECT value FROM hq_settings WHERE key = ?",
                       (_UNSUBSCRIBE_KEY,)).fetchone()
    if row is not None:
        return bytes.fromhex(row[0])
    if not make:
        return None
    key = secrets.token_bytes(32)
    conn.execute("INSERT INTO hq_settings (key, value) VALUES (?, ?)",
                 (_UNSUBSCRIBE_KEY, key.hex()))
    return key
