"""The one entry point the agent uses: a configured set of identification readers.

    configs = [ReaderConfig.from_dict(t) for t in toml["readers"]]
    readers = ReaderSet(configs, on_read=deliver_to_till, on_error=log_it)
    readers.start()          # returns at once; every reader runs on its own thread
    readers.health()         # one dict per reader, for `loyalty status`
    readers.stop()           # within about a second

Configuration (one `[[readers]]` table each, see docs/readers.md):
    kind      "magstripe" | "barcode" | "callerid" | "key" | "pcsc"
    port      serial readers: a device path or a pyserial URL (loop://, socket://host:port)
    reader    pcsc: a substring of the PC/SC reader name (case-insensitive)
    till      the till whose POS receives what this reader reads
    baudrate  serial readers, default 9600
    name      optional, default "<kind>:<port or reader>"

On site, `python -m hardware.readers --config agent.toml` (or `--kind magstripe --port
/dev/ttyUSB0 --till T1`) runs the readers and prints every read and error, masked.

Promises: a bad configuration is refused by `ReaderConfig` (ValueError) before anything
starts; a device that fails never stops the others or the caller. Must never: hold
business logic (what a read means is the agent's business).
"""

from __future__ import annotations

import argparse
import logging
import threading
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from hardware.pcsc import PcscWatcher
from hardware.reads import CardRead, mask, scrub
from hardware.serialreader import SERIAL_KINDS, SerialReader

READER_KINDS = (*SERIAL_KINDS, "pcsc")
_FIELDS = {"kind", "port", "reader", "till", "baudrate", "name"}


@dataclass(frozen=True)
class ReaderConfig:
    kind: str
    till: str
    port: str | None = None
    reader: str | None = None
    baudrate: int = 9600
    name: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in READER_KINDS:
            raise ValueError(f"reader kind {self.kind!r} is not one of {', '.join(READER_KINDS)}")
        if not self.till:
            raise ValueError(f'a {self.kind} reader needs the till it serves (till = "T1")')
        if self.kind == "pcsc" and not self.reader:
            raise ValueError('a pcsc reader needs reader = "name substring"')
        if self.kind != "pcsc" and not self.port:
            raise ValueError(f'a {self.kind} reader needs port = "/dev/ttyUSB0" (or a URL)')
        if not isinstance(self.baudrate, int) or self.baudrate <= 0:
            raise ValueError(f"baudrate must be a positive integer, not {self.baudrate!r}")

    @classmethod
    def from_dict(cls, table: Mapping[str, Any]) -> ReaderConfig:
        """From a `[[readers]]` TOML table; unknown keys are refused (typos show up)."""
        unknown = set(table) - _FIELDS
        if unknown:
            raise ValueError(f"unknown reader setting(s): {', '.join(sorted(unknown))}")
        return cls(**dict(table))

    @property
    def display_name(self) -> str:
        return self.name or f"{self.kind}:{self.reader if self.kind == 'pcsc' else self.port}"


class ReaderSet:
    """Starts, stops and reports on every configured reader."""

    def __init__(
        self,
        configs: list[ReaderConfig],
        on_read: Callable[[CardRead], None],
        on_error: Callable[[str, Exception], None],
        *,
        max_backoff: float = 5.0,
    ) -> None:
        names = [c.display_name for c in configs]
        duplicates = {n for n in names if names.count(n) > 1}
        if duplicates:
            raise ValueError(f"two readers share a name: {', '.join(sorted(duplicates))}")
        self._readers = [_build(c, on_read, on_error, max_backoff) for c in configs]

    def start(self) -> None:
        for reader in self._readers:
            reader.start()

    def stop(self) -> None:
        for reader in self._readers:
            reader.request_stop()  # all wind down at once, then wait for each
        for reader in self._readers:
            reader.stop()

    def health(self) -> list[dict[str, Any]]:
        return [reader.health() for reader in self._readers]


def _build(
    config: ReaderConfig,
    on_read: Callable[[CardRead], None],
    on_error: Callable[[str, Exception], None],
    max_backoff: float,
) -> SerialReader | PcscWatcher:
    if config.kind == "pcsc":
        assert config.reader is not None
        return PcscWatcher(
            name=config.display_name,
            reader=config.reader,
            till=config.till,
            on_read=on_read,
            on_error=on_error,
            max_backoff=max_backoff,
        )
    assert config.port is not None
    return SerialReader(
        name=config.display_name,
        kind=config.kind,
        port=config.port,
        till=config.till,
        on_read=on_read,
        on_error=on_error,
        baudrate=config.baudrate,
        max_backoff=max_backoff,
    )


def main(argv: list[str] | None = None) -> int:
    """Run readers in the foreground and print what they read (for testing on site)."""
    args = _arguments(argv)
    logging.basicConfig(level=logging.ERROR)  # errors are printed below, once
    if args.config:
        with open(args.config, "rb") as file:
            tables = tomllib.load(file).get("readers", [])
        configs = [ReaderConfig.from_dict(t) for t in tables]
    else:
        configs = [
            ReaderConfig(
                kind=args.kind,
                port=args.port,
                reader=args.reader,
                till=args.till,
                baudrate=args.baudrate,
            )
        ]
    readers = ReaderSet(configs, _print_read, _print_error)
    readers.start()
    print(f"reading from {len(configs)} reader(s); Ctrl-C stops", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    readers.stop()
    for health in readers.health():
        print(health)
    return 0


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m hardware.readers", description=main.__doc__)
    parser.add_argument("--config", help="an agent TOML file with [[readers]] tables")
    parser.add_argument("--kind", choices=READER_KINDS)
    parser.add_argument("--port", help="serial readers: device path or pyserial URL")
    parser.add_argument("--reader", help="pcsc: reader name substring")
    parser.add_argument("--till", default="T1")
    parser.add_argument("--baudrate", type=int, default=9600)
    args = parser.parse_args(argv)
    if not args.config and not args.kind:
        parser.error("give --config FILE or --kind with --port/--reader")
    return args


def _print_read(read: CardRead) -> None:
    print(
        f"{read.at:%H:%M:%S} {read.reader} -> till {read.till}: {read.kind} "
        f"{mask(read.value)} {read.detail}",
        flush=True,
    )


def _print_error(name: str, error: Exception) -> None:
    print(f"{name}: {scrub(str(error))}", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
