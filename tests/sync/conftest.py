"""Fixtures of the modem-link tests, defined in modem_fixtures.py: modem_line (a running
line simulator), modem_port (opens a pty like a device), hayes_modem (a modem + client)."""

from modem_fixtures import hayes_modem, modem_line, modem_port  # noqa: F401
