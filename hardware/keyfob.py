"""Electronic keys (RFID fobs, iButtons) from readers that present as serial devices (pure).

Line format (one key per line, terminated by CR, LF or CR LF; the usual output of
Wiegand-to-serial and iButton converters, configure the converter to it):

    <id>[*<checksum>]

    id        2 to 16 hex digits, an even number of them: the key's bytes, most
              significant first (Wiegand 26 -> 6 digits, Wiegand 34 -> 8, iButton -> 16);
              spaces or colons between bytes are allowed ("04:A1:B2")
    checksum  optional: 2 hex digits, the XOR of the id's bytes

Examples: `04A1B2C3`, `04 A1 B2 C3`, `04A1B2C3*5C`.

Promises: `parse_key` returns the id as uppercase hex without separators. Must never:
raise anything but `ParseError`, or accept a key whose checksum is wrong.
"""

from __future__ import annotations

import re
from functools import reduce

from hardware.reads import ParseError

_LINE = re.compile(r"((?:[0-9A-Fa-f]{2}[ :]?){1,8})(?:\*([0-9A-Fa-f]{2}))?")


def checksum(key_hex: str) -> str:
    """The XOR of a hex id's bytes as 2 uppercase hex digits."""
    data = bytes.fromhex(key_hex)
    return f"{reduce(lambda a, b: a ^ b, data, 0):02X}"


def parse_key(line: str) -> str:
    """The key id as uppercase hex; ParseError if the line is not a key or fails its checksum."""
    match = _LINE.fullmatch(line.strip())
    if not match or match.group(1)[-1] in " :":
        raise ParseError("key_garbled", "not a key id (2-16 hex digits, optional *checksum)")
    key = re.sub(r"[ :]", "", match.group(1)).upper()
    if match.group(2) is not None and checksum(key) != match.group(2).upper():
        raise ParseError("key_checksum", "the key's checksum does not match its id")
    return key
