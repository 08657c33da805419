"""Read back a QR code the portal drew as inline SVG: path -> pixels -> a real QR reader.

zxing-cpp decodes, so a test finds what a phone's camera would find, not what the code that
drew the picture meant to draw.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET  # noqa: S405 - parses the portal's own output

from tests.conftest import skip_or_fail

SVG = "{http://www.w3.org/2000/svg}"
_SQUARE = re.compile(r"M(\d+),(\d+)H(\d+)V(\d+)H(\d+)z")
_SVG_IN_PAGE = re.compile(r"<svg\b.*?</svg>", re.DOTALL)


def rasterize(markup: str, scale: int = 4) -> tuple[bytes, int]:
    """Paint the SVG's white ground and its one path of module squares to grey pixels."""
    root = ET.fromstring(markup)  # noqa: S314 - our own output
    size = int(root.get("viewBox", "").split()[2])
    path = root.find(f"{SVG}path")
    assert path is not None, "the SVG has no path"
    d = path.get("d", "")
    # The whole path must be squares we understand, or the picture would be wrong.
    assert "".join(m.group(0) for m in _SQUARE.finditer(d)) == d
    side = size * scale
    pixels = bytearray(b"\xff" * side * side)
    for m in _SQUARE.finditer(d):
        x0, y0, x1, y1, x2 = map(int, m.groups())
        assert x2 == x0
        for y in range(y0 * scale, y1 * scale):
            pixels[y * side + x0 * scale : y * side + x1 * scale] = b"\x00" * ((x1 - x0) * scale)
    return bytes(pixels), side


def decode_svg(markup: str) -> list[str]:
    """The texts of every QR code a reader finds in the SVG."""
    try:
        import zxingcpp
    except ImportError:
        skip_or_fail("QR decoding needs the zxing-cpp package (a dev dependency)")
    pixels, side = rasterize(markup)
    found = zxingcpp.read_barcodes(memoryview(pixels).cast("B", (side, side)))
    return [barcode.text for barcode in found]


def svg_in_page(html: str) -> str:
    """The one inline <svg> element of an HTML page."""
    found = _SVG_IN_PAGE.findall(html)
    assert len(found) == 1, f"expected one inline SVG, found {len(found)}"
    return str(found[0])
