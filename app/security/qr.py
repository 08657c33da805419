"""QR codes rendered as inline SVG, safe under a CSP that forbids inline styles.

qrcode decides what the symbol holds (its segments, version table, block table and function
patterns); the steps it spends its time on are done here instead: bits gathered in one
integer, Reed-Solomon from log tables, data modules placed along a walk cached per version,
one fixed mask, and the SVG drawn a row run at a time. A scan page renders a code in about a
millisecond rather than three; a unit test compares the modules with qrcode's own.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET  # noqa: S405 - builds markup, parses nothing
from functools import cache

import qrcode
import qrcode.base
import qrcode.constants
import qrcode.exceptions
import qrcode.util

_SVG_NS = "http://www.w3.org/2000/svg"
ERROR_CORRECTION = qrcode.constants.ERROR_CORRECT_M  # up to 15% of the code may be unreadable
BORDER = 4  # the quiet zone scanners need, in modules

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


@cache
def _generator_multiples(degree: int) -> tuple[tuple[int, ...], ...]:
    """The generator's coefficients (after the leading 1) times each byte value, by value."""
    generator = _generator_logs(degree)
    zero = (0,) * degree
    return (zero, *(tuple(_EXP[_LOG[f] + g] for g in generator) for f in range(1, 256)))


def _error_correction(data: list[int], degree: int) -> list[int]:
    """The Reed-Solomon codewords of a block: the remainder of data * x^degree by the generator."""
    multiples = _generator_multiples(degree)
    remainder = [0] * degree
    for byte in data:
        row = multiples[byte ^ remainder[0]]
        remainder = [r ^ m for r, m in zip(remainder[1:], row, strict=False)]
        remainder.append(row[-1])
    return remainder


class _Bits:
    """qrcode's BitBuffer interface (`put`, `len`) on one integer instead of a bit at a time."""

    def __init__(self) -> None:
        self.value = 0
        self.length = 0

    def put(self, num: int, length: int) -> None:
        self.value = (self.value << length) | num
        self.length += length

    def __len__(self) -> int:
        return self.length


def _segments(data: str) -> list[qrcode.util.QRData]:
    """qrcode's own split of the data into numeric, alphanumeric and byte segments."""
    return list(qrcode.util.optimal_data_chunks(data, minimum=20))  # QRCode.add_data's default


def _data_bits(segments: list[qrcode.util.QRData], version: int) -> _Bits:
    bits = _Bits()
    for segment in segments:
        bits.put(segment.mode, 4)
        bits.put(len(segment), qrcode.util.length_in_bits(segment.mode, version))
        segment.write(bits)
    return bits


def _version(segments: list[qrcode.util.QRData], error_correction: int) -> int:
    """The smallest version whose capacity holds the data (qrcode's best_fit)."""
    limits = qrcode.util.BIT_LIMIT_TABLE[error_correction]
    needed: dict[int, int] = {}  # length fields are 3 sizes: versions 1-9, 10-26, 27-40
    for version in range(1, 41):
        group = 0 if version < 10 else 1 if version < 27 else 2
        if group not in needed:
            needed[group] = len(_data_bits(segments, version))
        if needed[group] <= limits[version]:
            return version
    raise qrcode.exceptions.DataOverflowError(f"{needed[2]} bits do not fit in version 40")


def _codewords(
    segments: list[qrcode.util.QRData], version: int, error_correction: int
) -> list[int]:
    """qrcode's util.create_data (same bits, same order) with a table-driven Reed-Solomon step."""
    bits = _data_bits(segments, version)
    blocks = qrcode.base.rs_blocks(version, error_correction)
    bit_limit = sum(block.data_count * 8 for block in blocks)
    if len(bits) > bit_limit:
        raise qrcode.exceptions.DataOverflowError(f"{len(bits)} bits > {bit_limit}")
    bits.put(0, min(bit_limit - len(bits), 4))  # terminator
    bits.put(0, -len(bits) % 8)
    pads = (qrcode.util.PAD0, qrcode.util.PAD1)
    for i in range((bit_limit - len(bits)) // 8):
        bits.put(pads[i % 2], 8)
    buffer = bits.value.to_bytes(bit_limit // 8, "big")

    data_blocks, ec_blocks = [], []
    offset = 0
    for block in blocks:
        data = list(buffer[offset : offset + block.data_count])
        offset += block.data_count
        data_blocks.append(data)
        ec_blocks.append(_error_correction(data, block.total_count - block.data_count))
    # Interleaved: the i-th codeword of every block in turn, data first, then error correction.
    out: list[int] = []
    for group in (data_blocks, ec_blocks):
        for i in range(max(len(b) for b in group)):
            out.extend(b[i] for b in group if i < len(b))
    return out


# Any of the eight masks is valid for every reader; qrcode scores all eight and keeps the best,
# which costs more than the rest of the drawing. Mask 0 darkens the modules where row + column
# is even.
MASK = 0


@cache
def _layout(
    version: int, error_correction: int
) -> tuple[tuple[tuple[bool | None, ...], ...], tuple[tuple[int, int, bool], ...]]:
    """A version's function patterns (format information for MASK included), and its data
    modules in placement order, each with whether MASK inverts it.

    The patterns are qrcode's; the order is its map_data walk: two-column strips from the
    right, up then down, skipping the vertical timing column.
    """
    qr = qrcode.QRCode(version=version, error_correction=error_correction, mask_pattern=MASK)
    size = qr.modules_count = version * 4 + 17
    qr.modules = [[None] * size for _ in range(size)]
    qr.setup_position_probe_pattern(0, 0)
    qr.setup_position_probe_pattern(size - 7, 0)
    qr.setup_position_probe_pattern(0, size - 7)
    qr.setup_position_adjust_pattern()
    qr.setup_timing_pattern()
    qr.setup_type_info(False, MASK)
    if version >= 7:
        qr.setup_type_number(False)
    order = []
    row, step = size - 1, -1
    for col in range(size - 1, 0, -2):
        if col <= 6:
            col -= 1
        while 0 <= row < size:
            for c in (col, col - 1):
                if qr.modules[row][c] is None:
                    order.append((row, c, (row + c) % 2 == 0))
            row += step
        row -= step
        step = -step
    return tuple(tuple(r) for r in qr.modules), tuple(order)


def qr_matrix(data: str, error_correction: int = ERROR_CORRECTION) -> list[list[bool]]:
    """The modules of the QR code for data (no quiet zone), True for dark; mask MASK."""
    segments = _segments(data)
    version = _version(segments, error_correction)
    codewords = _codewords(segments, version, error_correction)
    patterns, order = _layout(version, error_correction)
    modules: list[list[bool]] = [list(row) for row in patterns]  # type: ignore[arg-type]
    # Most significant bit first; the modules left over after the last codeword stay light.
    bits = "".join(f"{codeword:08b}" for codeword in codewords).ljust(len(order), "0")
    for (row, col, inverted), bit in zip(order, bits, strict=True):
        modules[row][col] = (bit == "1") != inverted
    return modules


def _path(modules: list[list[bool]], border: int) -> str:
    """One SVG path drawing each horizontal run of dark modules as a rectangle."""
    parts = []
    for y, row in enumerate(modules, start=border):
        x, width = 0, len(row)
        while x < width:
            if not row[x]:
                x += 1
                continue
            start = x
            while x < width and row[x]:
                x += 1
            x0, x1 = start + border, x + border
            parts.append(f"M{x0},{y}H{x1}V{y + 1}H{x0}z")
    return "".join(parts)


def qr_svg(data: str, *, title: str) -> str:
    """Return an <svg> element (no XML declaration) drawing data as a QR code."""
    modules = qr_matrix(data)
    size = len(modules) + 2 * BORDER

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
    ET.SubElement(svg, "path", {"d": _path(modules, BORDER), "fill": "#000000"})
    return ET.tostring(svg, encoding="unicode")
