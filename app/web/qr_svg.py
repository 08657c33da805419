"""QR codes as inline SVG, safe under a CSP that forbids inline styles.

qrcode builds the symbol (segments, version, error correction, mask); this module only draws
its dark modules, one rectangle per horizontal run, in a single <path>.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET  # noqa: S405 - builds markup, parses nothing

import qrcode
import qrcode.constants

_SVG_NS = "http://www.w3.org/2000/svg"
ERROR_CORRECTION = qrcode.constants.ERROR_CORRECT_M  # up to 15% of the code may be unreadable
BORDER = 4  # the quiet zone scanners need, in modules
# Any of the eight masks reads everywhere; scoring all eight (qrcode's default) takes ~11 ms a
# code here, one fixed mask ~2 ms.
MASK = 0


def qr_matrix(data: str) -> list[list[bool]]:
    """The modules of the QR code for data, quiet zone included, True for dark."""
    code = qrcode.QRCode(error_correction=ERROR_CORRECTION, border=BORDER, mask_pattern=MASK)
    code.add_data(data)
    code.make(fit=True)
    matrix: list[list[bool]] = code.get_matrix()
    return matrix


def _path(modules: list[list[bool]]) -> str:
    """One SVG path drawing each horizontal run of dark modules as a rectangle."""
    parts = []
    for y, row in enumerate(modules):
        x, width = 0, len(row)
        while x < width:
            if not row[x]:
                x += 1
                continue
            start = x
            while x < width and row[x]:
                x += 1
            parts.append(f"M{start},{y}H{x}V{y + 1}H{start}z")
    return "".join(parts)


def qr_svg(data: str, *, title: str) -> str:
    """Return an <svg> element (no XML declaration) drawing data as a QR code."""
    modules = qr_matrix(data)
    size = len(modules)

    # No mm width/height (CSS sizes it through the viewBox), no fixed id (two codes on a page
    # would clash), an accessible name.
    svg = ET.Element(
        "svg",
        {
            "xmlns": _SVG_NS,
            "viewBox": f"0 0 {size} {size}",
            "role": "img",
            "aria-label": title,
            "class": "qr-code",
            "shape-rendering": "crispEdges",
        },
    )
    ET.SubElement(svg, "title").text = title
    # A white ground keeps the code readable on a dark page theme.
    ET.SubElement(svg, "rect", {"width": str(size), "height": str(size), "fill": "#ffffff"})
    ET.SubElement(svg, "path", {"d": _path(modules), "fill": "#000000"})
    return ET.tostring(svg, encoding="unicode")
