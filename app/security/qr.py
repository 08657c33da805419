"""QR codes rendered as inline SVG, safe under a CSP that forbids inline styles."""

from __future__ import annotations

import xml.etree.ElementTree as ET  # noqa: S405 - builds markup, parses nothing

import qrcode
import qrcode.constants
import qrcode.image.svg

_SVG_NS = "http://www.w3.org/2000/svg"


class RunPathImage(qrcode.image.svg.SvgPathImage):
    """qrcode's one-<path> SVG image, drawn a row run at a time in whole module units.

    The stock drawer turns every module into a rectangle through Decimal arithmetic, about
    three quarters of the time of a scan page; this reads the finished module matrix once and
    draws each horizontal run of dark modules as one rectangle. Same picture, a third the size.
    """

    needs_drawrect = False  # no call per module: process() reads the matrix

    def process(self) -> None:
        subpaths = []
        for y, row in enumerate(self.modules, start=self.border):
            x = 0
            while x < self.width:
                if not row[x]:
                    x += 1
                    continue
                start = x
                while x < self.width and row[x]:
                    x += 1
                x0, x1 = start + self.border, x + self.border
                subpaths.append(f"M{x0},{y}H{x1}V{y + 1}H{x0}z")
        self._subpaths = subpaths
        super().process()


def qr_svg(data: str, *, title: str) -> str:
    """Return an <svg> element (no XML declaration) drawing data as a QR code."""
    qr = qrcode.QRCode(
        error_correction=qrcode.constants.ERROR_CORRECT_M,
        box_size=10,  # qrcode's SVG unit: 10 px per module makes one viewBox unit per module
        border=4,  # the quiet zone scanners need
        image_factory=RunPathImage,
        # Any of the eight masks is valid for every reader; trying all eight to score them
        # (qrcode's default) costs about two thirds of the rendering time of a scan page.
        mask_pattern=0,
    )
    qr.add_data(data)
    qr.make(fit=True)
    image = qr.make_image()  # every dark module in one <path>
    if image.path is None:
        raise RuntimeError("qrcode did not build the SVG path")
    size = qr.modules_count + 2 * qr.border

    # Our own element rather than qrcode's: no mm width/height (CSS sizes it through the
    # viewBox), no fixed id (two codes on a page would clash), an accessible name.
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
    ET.SubElement(svg, "path", {"d": image.path.get("d", ""), "fill": "#000000"})
    return ET.tostring(svg, encoding="unicode")
