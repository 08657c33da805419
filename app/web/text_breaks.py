"""Long technical strings (ARNs, action names, addresses) that may wrap at their punctuation.

A table cell sized to `arn:aws:iam::123456789012:mfa/iam-onboard/alice` overflows a desk
screen; breaking anywhere would split words. `<wbr>` after / : - . (the marks issue 17 lets a
line break at) lets the browser wrap there and nowhere else.
"""

from __future__ import annotations

import re

from markupsafe import Markup, escape

# After a run of these, when more text follows (not at the end, not before a space).
_BREAK_AFTER = re.compile(r"([/:.-]+)(?=[^\s/:.-])")


def breakable(value: object) -> Markup:
    """`value` escaped, with a <wbr> wrap point after its punctuation."""
    escaped = str(escape("" if value is None else value))
    # Only <wbr> is added to text escape() made safe: &amp; &lt; &#39; hold none of these marks.
    return Markup(_BREAK_AFTER.sub(r"\1<wbr>", escaped))  # noqa: S704  # nosec B704 - escaped above
