"""`iam-onboard demo` options for the sandbox's realism modes (app/sandbox/realism.py).

Each option overrides its environment variable; an option not given leaves the variable's
value (or off). The CLI calls add_demo_options on the demo parser, realism_for_demo before
start_sandbox, and prints banner_lines. Outside app/sandbox on purpose: importing anything
there loads moto, and the parser is built for every command, `serve` included.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from app.errors import PortalError
from app.i18n import _

if TYPE_CHECKING:
    from app.sandbox.realism import RealismSettings


def _non_negative(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(_("{value}: use a number ≥ 0.").format(value=raw))
    return value


def _whole(raw: str) -> int:
    value = _non_negative(raw)
    if value != int(value):
        raise argparse.ArgumentTypeError(_("{value}: use a whole number.").format(value=raw))
    return int(value)


def add_demo_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--iam-latency-ms",
        type=_non_negative,
        metavar="N",
        help=_("every sandbox IAM call takes about N ms more, as real AWS is slow"),
    )
    parser.add_argument(
        "--iam-consistency-ms",
        type=_non_negative,
        metavar="N",
        help=_("for up to N ms after a write, other sandbox IAM calls may not see it"),
    )
    parser.add_argument(
        "--iam-rate",
        type=_non_negative,
        metavar="R",
        help=_("the sandbox account answers at most R IAM calls per second, then Throttling"),
    )
    parser.add_argument(
        "--iam-burst",
        type=_whole,
        metavar="B",
        help=_("calls the sandbox account may make at once before the rate applies"),
    )


def realism_for_demo(args: argparse.Namespace) -> RealismSettings:
    from app.sandbox.realism import settings_with

    try:
        return settings_with(
            latency_ms=args.iam_latency_ms,
            consistency_ms=args.iam_consistency_ms,
            rate=args.iam_rate,
            burst=args.iam_burst,
        )
    except ValueError as exc:
        raise PortalError(str(exc)) from exc


def banner_lines(settings: RealismSettings) -> list[str]:
    """What the demo prints about the modes that are on."""
    lines = []
    if settings.latency_ms > 0:
        lines.append(
            _("Sandbox IAM latency: {ms} ms more per call, give or take a fifth.").format(
                ms=f"{settings.latency_ms:g}"
            )
        )
    if settings.consistency_ms > 0:
        lines.append(
            _("Sandbox IAM consistency: a write may stay unseen for up to {ms} ms.").format(
                ms=f"{settings.consistency_ms:g}"
            )
        )
    if settings.rate > 0:
        lines.append(
            _("Sandbox IAM throttling: {rate} calls per second, {burst} at once.").format(
                rate=f"{settings.rate:g}", burst=settings.bucket_size
            )
        )
    return lines
