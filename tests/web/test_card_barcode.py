"""The EAN-13 drawing of web/barcode.py: the standard's code tables (a known number's
modules), refusals of what is not an EAN-13, and the SVG a real scanner library reads:
rendered by headless Chromium to PNG and decoded by zbarimg."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from agent import cardnumber
from web.barcode import check_digit, ean13_svg, modules


def test_a_known_ean13_has_the_standards_modules() -> None:
    # 4006381333931, the common textbook example: parity of 4 is LGLLGG
    bars = modules("4006381333931")
    assert len(bars) == 95 and bars.startswith("101") and bars.endswith("101")
    assert bars[3:10] == "0001101"  # 0 in L
    assert bars[10:17] == "0100111"  # 0 in G
    assert bars[45:50] == "01010"
    assert check_digit("400638133393") == "1"


@pytest.mark.parametrize("bad", ["4006381333932", "400638133393", "40063813339311", "abcdefghijklm",
                                 "٤006381333931"])
def test_a_number_that_is_not_an_ean13_is_never_drawn(bad: str) -> None:
    with pytest.raises(ValueError):
        ean13_svg(bad)


def test_the_drawn_club_card_number_scans_back(tmp_path: Path) -> None:
    chromium, zbar = shutil.which("chromium"), shutil.which("zbarimg")
    if chromium is None or zbar is None:
        pytest.skip("needs chromium and zbar-tools (install.sh --dev)")
    number = cardnumber.make(12, 345)
    page = tmp_path / "card.html"
    page.write_text(f"<!doctype html><body style='margin:20px'>{ean13_svg(number)}</body>")
    png = tmp_path / "card.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                    f"--screenshot={png}", "--window-size=500,220", page.as_uri()],
                   check=True, capture_output=True, timeout=60)
    read = subprocess.run([zbar, "--quiet", "--raw", str(png)], check=False, capture_output=True,
                          text=True, timeout=30)
    assert read.stdout.split() == [number]
