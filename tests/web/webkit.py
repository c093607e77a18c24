"""Helpers of the web back office tests (a unique module name: the test folders are not
packages): the `Shop` the fixtures build (its processes are reported when a test fails),
staff accounts through the CLI, screenshots and printed PDFs kept under
tests/artefacts/web/."""

from __future__ import annotations

import base64
import shutil
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from chainkit import ChainRig, OutletProcess, Process
from testkit import cli

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTEFACTS = Path(__file__).resolve().parents[1] / "artefacts" / "web"
PASSWORD = "correct horse battery staple"
OTHER_PASSWORD = "another long password"


@dataclass
class Shop:
    rig: ChainRig
    a: OutletProcess
    customers: dict[str, dict[str, str]] = field(default_factory=dict)  # name -> id, card
    sales: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # name -> answers
    invoice: dict[str, Any] = field(default_factory=dict)
    stock_received: int = 0
    handed_out: int = 0

    @property
    def hq_url(self) -> str:
        return self.rig.hq.url

    @property
    def office(self) -> str:
        return self.rig.hq.url + "/office"

    @property
    def manager(self) -> str:
        return self.a.url + "/manager"

    def processes(self) -> list[Process]:
        return self.rig.processes()


def staff_add(db: Path | str, username: str, password: str, role: str | None = None) -> None:
    """`loyalty hq staff-add --password-stdin [--role ROLE]`, as an operator runs it (an
    administrator unless `role` says otherwise)."""
    done = cli("hq", "staff-add", "--db", str(db), "--password-stdin", username,
               *(["--role", role] if role else []), input=password + "\n")
    assert done.returncode == 0, done.stderr


def today() -> date:
    return datetime.now(UTC).date()


_shots = {"n": 0}


def shot(driver: Any, name: str) -> Path:
    """A full-page screenshot of what the browser shows, kept as a test artefact."""
    _shots["n"] += 1
    height = int(driver.execute_script(
        "return Math.max(document.body.scrollHeight, document.documentElement.scrollHeight)"))
    driver.set_window_size(1280, min(max(height + 120, 700), 6000))
    path = ARTEFACTS / f"{_shots['n']:02d}-{name}.png"
    driver.save_screenshot(str(path))
    driver.set_window_size(1280, 1000)
    return path


def print_pdf(driver: Any, name: str) -> tuple[Path, str]:
    """Prints the current page to PDF through Chrome DevTools; (file, its text or '')."""
    answer = driver.execute_cdp_cmd("Page.printToPDF", {"printBackground": False,
                                                        "preferCSSPageSize": True})
    path = ARTEFACTS / f"{name}.pdf"
    path.write_bytes(base64.b64decode(answer["data"]))
    text = ""
    if shutil.which("pdftotext"):
        done = subprocess.run(["pdftotext", "-layout", str(path), "-"], check=False,
                              capture_output=True,
                              text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        text = done.stdout
    return path, text

