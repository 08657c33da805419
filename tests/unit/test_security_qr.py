import re
import xml.etree.ElementTree as ET

import pytest

from app.security.qr import qr_svg
from app.security.totp import otpauth_uri

SVG = "{http://www.w3.org/2000/svg}"
URI = otpauth_uri(
    seed="JBSWY3DPEHPK3PXPGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQJBSWY3DPEHPK3PXP",
    issuer="AWS 123456789012",
    account_name="alice+ops@example.com",
)
TITLE = "QR code to scan with your authenticator app"


def test_svg_is_inline_markup_with_an_accessible_name():
    markup = qr_svg(URI, title=TITLE)
    assert markup.startswith("<svg ")
    root = ET.fromstring(markup)  # noqa: S314 - our own output
    assert root.tag == f"{SVG}svg"
    assert root.get("role") == "img"
    assert root.get("aria-label") == TITLE
    assert root.findtext(f"{SVG}title") == TITLE
    assert re.fullmatch(r"0 0 (\d+) \1", root.get("viewBox", ""))
    # No fixed physical size: CSS decides through the viewBox.
    assert root.get("width") is None and root.get("height") is None


def test_svg_has_no_inline_style_or_script():
    markup = qr_svg(URI, title=TITLE)
    assert "style=" not in markup
    assert "<script" not in markup.lower()
    root = ET.fromstring(markup)  # noqa: S314 - our own output
    assert all("style" not in el.attrib for el in root.iter())


def test_title_is_escaped():
    hostile = '"><script>alert(1)</script>'
    markup = qr_svg("x", title=hostile)
    assert "<script" not in markup
    root = ET.fromstring(markup)  # noqa: S314 - our own output
    assert root.get("aria-label") == hostile
    assert root.findtext(f"{SVG}title") == hostile


def rasterize(markup: str, scale: int = 4) -> tuple[bytes, int]:
    """Paint the SVG's white ground and its one path of module squares to grey pixels."""
    root = ET.fromstring(markup)  # noqa: S314 - our own output
    size = int(root.get("viewBox", "").split()[2])
    d = root.find(f"{SVG}path").get("d")
    square = re.compile(r"M(\d+),(\d+)H(\d+)V(\d+)H(\d+)z")
    # The whole path must be squares we understand, or the picture would be wrong.
    assert "".join(m.group(0) for m in square.finditer(d)) == d
    side = size * scale
    pixels = bytearray(b"\xff" * side * side)
    for m in square.finditer(d):
        x0, y0, x1, y1, x2 = map(int, m.groups())
        assert x2 == x0
        for y in range(y0 * scale, y1 * scale):
            pixels[y * side + x0 * scale : y * side + x1 * scale] = b"\x00" * ((x1 - x0) * scale)
    return bytes(pixels), side


def test_qr_code_decodes_back_to_the_uri():
    zxingcpp = pytest.importorskip(
        "zxingcpp", reason="QR decoding needs the zxing-cpp package (a dev dependency)"
    )
    pixels, side = rasterize(qr_svg(URI, title=TITLE))
    found = zxingcpp.read_barcodes(memoryview(pixels).cast("B", (side, side)))
    assert [barcode.text for barcode in found] == [URI]
