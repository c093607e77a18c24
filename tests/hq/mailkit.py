"""A real SMTP submission server inside the test process, for what HQ sends (issue 13).

`SmtpServer(tmp)`: aiosmtpd on loopback, on its own thread, with STARTTLS required (a
self-signed certificate for 127.0.0.1 and localhost made here with `cryptography`: HQ
trusts it through `smtp.ca_file`) and AUTH (PLAIN/LOGIN, user `club`, password
`PASSWORD`), as a submission server is set up. Every message it accepts is in `received`
(`Received`: envelope, parsed message, whether TLS and which login); every try, accepted
or not, is in `tries`. `reply` decides the answer to a DATA (default 250: accept), and runs
on the server's thread before it answers, so a test can kill HQ exactly between "the
server has the message" and "HQ heard 250". `settings()` are HQ's settings for it.
"""

from __future__ import annotations

import datetime
import ipaddress
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from testkit.processes import free_port

USER = "club"
PASSWORD = "correct horse battery staple"
SENDER = "Klub Zvestoba <klub@zvestoba.example>"
PUBLIC_URL = "https://klub.zvestoba.example"


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate (and its key) for 127.0.0.1 and localhost, valid for a day."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = folder / "smtp-cert.pem", folder / "smtp-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


@dataclass
class Received:
    sender: str
    recipients: list[str]
    raw: bytes
    tls: bool
    login: str | None
    message: EmailMessage = field(init=False)

    def __post_init__(self) -> None:
        parsed = message_from_bytes(self.raw, policy=default)
        assert isinstance(parsed, EmailMessage)
        self.message = parsed

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"])

    def attachment(self) -> bytes:
        for part in self.message.iter_attachments():
            assert isinstance(part, EmailMessage)
            payload = part.get_content()
            assert isinstance(payload, bytes)
            return payload
        raise AssertionError("no attachment")

    def text(self) -> str:
        body = self.message.get_body(("plain",))
        assert isinstance(body, EmailMessage)
        return str(body.get_content())


class SmtpServer:
    def __init__(self, tmp: Path, *, starttls: bool = True) -> None:
        import ssl

        self.cert, self.key = self_signed(tmp)
        self.port = free_port()
        self.received: list[Received] = []
        self.tries: list[str] = []  # the Message-ID of every DATA, accepted or not
        self.logins: list[str] = []
        self.reply: Callable[[Received], str] = lambda _: "250 2.0.0 OK queued"
        self.lock = threading.Lock()
        context = None
        if starttls:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(self.cert, self.key)
        self.controller = Controller(
            self, hostname="127.0.0.1", port=self.port, tls_context=context,
            require_starttls=starttls, auth_required=True, auth_require_tls=starttls,
            authenticator=self._authenticate)

    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str,
                      auth_data: Any) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login = auth_data.login.decode()
        with self.lock:
            self.logins.append(login)
        ok = login == USER and auth_data.password.decode() == PASSWORD
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        got = Received(sender=envelope.mail_from, recipients=list(envelope.rcpt_tos),
                       raw=bytes(envelope.original_content or envelope.content),
                       tls=session.ssl is not None,
                       login=session.auth_data.login.decode() if session.auth_data else None)
        answer = self.reply(got)
        with self.lock:
            self.tries.append(got.message_id)
            if answer.startswith("250"):
                self.received.append(got)
        return answer

    def start(self) -> SmtpServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def message_ids(self) -> list[str]:
        with self.lock:
            return [r.message_id for r in self.received]

    def settings(self, **changes: str | None) -> dict[str, str | None]:
        """HQ's settings to submit mail here (the password is set through stdin by the CLI,
        or directly with `hq.settings.change`)."""
        return {"smtp.host": "127.0.0.1", "smtp.port": str(self.port), "smtp.user": USER,
                "smtp.password": PASSWORD, "smtp.ca_file": str(self.cert),
                "mail.from": SENDER, "mail.public_url": PUBLIC_URL, **changes}
