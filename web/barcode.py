"""An EAN-13 barcode drawn as SVG (pure): the club card number on the desk's printable
card page (agent/desk.py; docs/desk.md).

Our own small function rather than a library: EAN-13 is three fixed code tables and a
parity pattern, about forty lines; a library (python-barcode) would add a dependency to
every outlet for that, and its SVG writer sets inline styles, which the back office's
Content-Security-Policy (web/office.py, no 'unsafe-inline') would drop. The SVG here uses
attributes only. Must never: draw a number whose check digit is wrong (a scanner would
read another card).
"""

from __future__ import annotations

from html import escape

L_CODES = ("0001101", "0011001", "0010011", "0111101", "0100011",
           "0110001", "0101111", "0111011", "0110111", "0001011")
G_CODES = tuple(code[::-1].translate(str.maketrans("01", "10")) for code in L_CODES)
R_CODES = tuple(code.translate(str.maketrans("01", "10")) for code in L_CODES)
PARITY = ("LLLLLL", "LLGLGG", "LLGGLG", "LLGGGL", "LGLLGG",
          "LGGLLG", "LGGGLL", "LGLGLG", "LGLGGL", "LGGLGL")
QUIET_LEFT, QUIET_RIGHT = 11, 7  # modules of white either side, as the standard asks


def check_digit(first12: str) -> str:
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(first12))
    return str((10 - total % 10) % 10)


def modules(number: str) -> str:
    """The 95 modules of an EAN-13 ('1' a bar); ValueError for anything but 13 digits with
    a right check digit."""
    if len(number) != 13 or not number.isascii() or not number.isdigit():
        raise ValueError("an EAN-13 is 13 digits")
    if check_digit(number[:12]) != number[12]:
        raise ValueError("the EAN-13 check digit is wrong")
    parity = PARITY[int(number[0])]
    left = "".join((L_CODES if p == "L" else G_CODES)[int(d)]
                   for p, d in zip(parity, number[1:7], strict=True))
    right = "".join(R_CODES[int(d)] for d in number[7:])
    return "101" + left + "01010" + right + "101"


def ean13_svg(number: str, module_px: int = 3, height_px: int = 120) -> str:
    """The barcode of `number` as an inline SVG element with the digits under the bars,
    `module_px` pixels a module wide (3 scans well from paper and screen)."""
    bars = modules(number)
    width = QUIET_LEFT + len(bars) + QUIET_RIGHT
    tall, text_h = 60, 12
    rects = []
    x = 0
    while x < len(bars):
        if bars[x] == "1":
            run = len(bars[x:]) - len(bars[x:].lstrip("1"))
            guard = x < 3 or 45 <= x < 50 or x >= 92
            rects.append(f'<rect x="{QUIET_LEFT + x}" y="0" width="{run}" '
                         f'height="{tall + (5 if guard else 0)}"/>')
            x += run
        else:
            x += 1
    digits = (f'<text x="{QUIET_LEFT - 2}" y="{tall + text_h}" text-anchor="end">'
              f'{number[0]}</text>'
              f'<text x="{QUIET_LEFT + 24}" y="{tall + text_h}" text-anchor="middle" '
              f'textLength="38">{number[1:7]}</text>'
              f'<text x="{QUIET_LEFT + 70}" y="{tall + text_h}" text-anchor="middle" '
              f'textLength="38">{number[7:]}</text>')
    total_h = tall + text_h + 2
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="barcode" role="img" '
            f'aria-label="Barcode {escape(number)}" width="{width * module_px}" '
            f'height="{height_px}" viewBox="0 0 {width} {total_h}" '
            f'preserveAspectRatio="none" shape-rendering="crispEdges">'
            f'<rect x="0" y="0" width="{width}" height="{total_h}" fill="#fff"/>'
            f'<g fill="#000">{"".join(rects)}</g>'
            f'<g fill="#000" font-family="monospace" font-size="10">{digits}</g></svg>')
