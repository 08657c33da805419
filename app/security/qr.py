"""QR codes rendered as inline SVG, safe under a CSP that forbids inline styles."""

from __future__ import annotations

import xml.etree.ElementTree as ET  # noqa: S405 - builds markup, parses nothing
from functools import cache

import qrcode
import qrcode.base
import qrcode.constants
import qrcode.exceptions
import qrcode.image.svg
import qrcode.util

_SVG_NS = "http://www.w3.org/2000/svg"

# GF(256) with the QR code polynomial x^8 + x^4 + x^3 + x^2 + 1, as exp and log tables.
_EXP = [0] * 512
_LOG = [0] * 256
_x = 1
for _i in range(255):
    _EXP[_i], _LOG[_x] = _x, _i
    _x <<= 1
    if _x & 0x100:
        _x ^= 0x11D
for _i in range(255, 512):
    _EXP[_i] = _EXP[_i - 255]


@cache
def _generator_logs(degree: int) -> tuple[int, ...]:
    """Logs of the coefficients (after the leading 1) of the product of (x - a^i), i < degree."""
    poly = [1]
    for i in range(degree):
        factor = _EXP[i]
        poly = [
            (poly[j] if j < len(poly) else 0)
            ^ (_EXP[_LOG[poly[j - 1]] + _LOG[factor]] if j and poly[j - 1] else 0)
            for j in range(len(poly) + 1)
        ]
    return tuple(_LOG[c] for c in poly[1:])


def _error_correction(data: list[int], degree: int) -> list[int]:
    """The Reed-Solomon codewords of a block: the remainder of data * x^degree by the generator."""
    generator = _generator_logs(degree)
    remainder = [0] * degree
    for byte in data:
        factor = byte ^ remainder[0]
        remainder = remainder[1:] + [0]
        if factor:
            log_factor = _LOG[factor]
            remainder = [
                r ^ _EXP[log_factor + g] for r, g in zip(remainder, generator, strict=True)
            ]
    return remainder


def _codewords(
    version: int, error_correction: int, data_list: list[qrcode.util.QRData]
) -> list[int]:
    """qrcode's util.create_data (same bits, same order) with a table-driven Reed-Solomon step.

    qrcode divides polynomials object by object, about half the time of drawing a code; this
    gives the same codewords (a unit test compares the two on many inputs).
    """
    buffer = qrcode.util.BitBuffer()
    for data in data_list:
        buffer.put(data.mode, 4)
        buffer.put(len(data), qrcode.util.length_in_bits(data.mode, version))
        data.write(buffer)
    blocks = qrcode.base.rs_blocks(version, error_correction)
    bit_limit = sum(block.data_count * 8 for block in blocks)
    if len(buffer) > bit_limit:
        raise qrcode.exceptions.DataOverflowError(f"{len(buffer)} bits > {bit_limit}")
    for _ in range(min(bit_limit - len(buffer), 4)):  # terminator
        buffer.put_bit(False)
    if len(buffer) % 8:
        for _ in range(8 - len(buffer) % 8):
            buffer.put_bit(False)
    pads = (qrcode.util.PAD0, qrcode.util.PAD1)
    for i in range((bit_limit - len(buffer)) // 8):
        buffer.put(pads[i % 2], 8)

    data_blocks, ec_blocks = [], []
    offset = 0
    for block in blocks:
        data = [0xFF & b for b in buffer.buffer[offset : offset + block.data_count]]
        offset += block.data_count
        data_blocks.append(data)
        ec_blocks.append(_error_correction(data, block.total_count - block.data_count))
    # Interleaved: the i-th codeword of every block in turn, data first, then error correction.
    out: list[int] = []
    for group in (data_blocks, ec_blocks):
        for i in range(max(len(b) for b in group)):
            out.extend(b[i] for b in group if i < len(b))
    return out


class FastQRCode(qrcode.QRCode):  # type: ignore[type-arg]
    """qrcode's QRCode with the codewords computed by _codewords; everything else is qrcode's."""

    def makeImpl(self, test: bool, mask_pattern: int) -> None:  # noqa: N802 - qrcode's name
        if getattr(self, "data_cache", None) is None:  # qrcode clears it when the data change
            self.data_cache = _codewords(self.version, self.error_correction, self.data_list)
        super().makeImpl(test, mask_pattern)


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
    qr = FastQRCode(
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
