"""The agent's configuration file (TOML, `--config`), validated with pydantic.

Options given on the command line win over the file. Promises: an invalid file is a
`config_error` that names the key and says what is expected (HQ's URL must be http or
https with a host, checked at start rather than at the first sync). Must never: log the token.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from schema.errors import ConfigError


class ReaderEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["magstripe", "barcode", "callerid", "key", "pcsc"]
    port: str | None = None
    reader: str | None = None
    till: str = Field(min_length=1, max_length=40)
    name: str | None = None
    baudrate: int = 9600


class ModemEntry(BaseModel):
    """The outlet's modem: dial `number` on `port` on `schedule` (docs/modem.md)."""

    model_config = ConfigDict(extra="forbid")

    port: str = Field(min_length=1)
    number: str = Field(pattern=r"^[0-9*#,WwPpTt+ -]{1,40}$")
    init: list[str] = ["ATZ", "ATE0V1"]
    guard_s: float = Field(1.0, gt=0, le=5)
    schedule: str = "every 2h"
    window_minutes: int = Field(30, ge=1, le=24 * 60)
    dial_timeout_s: float = Field(60, gt=0, le=300)


class AgentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outlet: str | None = None
    db: str | None = None
    hq: str | None = None
    token: str | None = None
    host: str = "127.0.0.1"
    port: int = 8701
    till_token: str | None = None
    card_range: int | None = Field(None, ge=1, le=9999)
    readers: list[ReaderEntry] = []
    modem: ModemEntry | None = None

    @field_validator("hq")
    @classmethod
    def _hq_url(cls, url: str | None) -> str | None:
        if url is None:
            return None
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{url!r} is not HQ's URL: say http://HOST:PORT or https://HOST")
        return url

    def __repr__(self) -> str:  # the tokens never reach a log line
        return f"AgentConfig(outlet={self.outlet!r}, db={self.db!r}, hq={self.hq!r})"


def load(path: str | Path | None, **overrides: Any) -> AgentConfig:
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text())
        except FileNotFoundError as exc:
            raise ConfigError(f"no config file at {path}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return AgentConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{path or 'options'}: {where}: {first['msg']}") from exc
