import re
import xml.etree.ElementTree as ET

import qrcode
import qrcode.constants

from app.security.totp import otpauth_uri
from app.web.qr_svg import qr_svg
from tests.qr_decode import SVG, decode_svg

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


def test_qr_code_decodes_back_to_the_uri():
    assert decode_svg(qr_svg(URI, title=TITLE)) == [URI]


def test_svg_draws_exactly_the_dark_modules():
    # qrcode's own symbol for the URI, at the level the portal uses (M), quiet zone included.
    code = qrcode.QRCode(
        error_correction=qrcode.constants.ERROR_CORRECT_M, border=4, mask_pattern=0
    )
    code.add_data(URI)
    code.make(fit=True)
    modules = code.get_matrix()
    root = ET.fromstring(qr_svg(URI, title=TITLE))  # noqa: S314 - our own output
    path = root.find(f"{SVG}path")
    assert path is not None
    drawn = set()
    for x0, y, x1 in re.findall(r"M(\d+),(\d+)H(\d+)V\d+H\d+z", path.get("d", "")):
        drawn.update((int(y), x) for x in range(int(x0), int(x1)))
    dark = {(r, c) for r, row in enumerate(modules) for c, on in enumerate(row) if on}
    assert drawn == dark
