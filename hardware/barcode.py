"""Barcodes as a scanner delivers them: the decoded text, optionally AIM-prefixed (pure).

Supported: EAN-13 (`]E0` or 13 bare digits), EAN-8 (`]E4` or 8 bare digits) and Code 128
(`]C0`, GS1-128 `]C1`, or any other bare printable text). Scanners verify Code 128's
mod-103 check character themselves and do not transmit it; the EAN check digit travels
with the code and is verified here. Configure scanners to send AIM identifiers when Code
128 labels may hold 8 or 13 digits, or they will be taken for EANs.

Promises: `parse_barcode` returns the code text (the digits for an EAN) and its
symbology. Must never: raise anything but `ParseError`, or accept an EAN whose check digit
is wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hardware.reads import ParseError

_AIM = re.compile(r"\][A-Za-z][0-9A-Za-z]")
_DIGITS = re.compile(r"[0-9]+")
_CODE128 = re.compile(r"[\x20-\x7e\x1d]+")
_AIM_SYMBOLOGIES = {"]E0": "ean13", "]E4": "ean8", "]C0": "code128", "]C1": "gs1-128"}
_EAN_LENGTHS = {"ean13": 13, "ean8": 8}


@dataclass(frozen=True)
class Barcode:
    value: str
    symbology: str


def ean_check_digit(body: str) -> str:
    """The check digit of an EAN body (weights 3,1,3,... from the right)."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return str((10 - total % 10) % 10)


def parse_barcode(text: str) -> Barcode:
    """The scanned code and its symbology; ParseError if unknown, garbled or failing its check."""
    text = text.strip("\r\n")
    if not text:
        raise ParseError("barcode_empty", "the scanner sent an empty line")
    symbology, code = _symbology(text)
    if not code:
        raise ParseError("barcode_empty", f"the scanner sent a {symbology} prefix without a code")
    if symbology in _EAN_LENGTHS:
        return Barcode(_ean(code, symbology), symbology)
    if not _CODE128.fullmatch(code) or (symbology == "code128" and "\x1d" in code):
        raise ParseError("barcode_garbled", "the code holds characters Code 128 cannot carry")
    if not code.strip(" "):  # a scanner sending only spaces read nothing
        raise ParseError("barcode_empty", "the scanner sent only spaces")
    return Barcode(code.strip(" "), symbology)


def _symbology(text: str) -> tuple[str, str]:
    if _AIM.match(text):
        prefix = text[:3]
        if prefix not in _AIM_SYMBOLOGIES:
            raise ParseError("barcode_unknown_format", f"unsupported symbology {prefix!r}")
        return _AIM_SYMBOLOGIES[prefix], text[3:]
    if _DIGITS.fullmatch(text) and len(text) == 13:
        return "ean13", text
    if _DIGITS.fullmatch(text) and len(text) == 8:
        return "ean8", text
    return "code128", text


def _ean(code: str, symbology: str) -> str:
    length = _EAN_LENGTHS[symbology]
    if not _DIGITS.fullmatch(code) or len(code) != length:
        raise ParseError("barcode_garbled", f"an {symbology.upper()} is {length} digits")
    if ean_check_digit(code[:-1]) != code[-1]:
        raise ParseError("check_digit", f"the {symbology.upper()} check digit is wrong: {code}")
    return code
