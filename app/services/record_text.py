"""Stored records (audit details, an invitation's last error) shown in the reader's language.

The records themselves stay in English, so the audit log reads the same in every export
whoever caused the event; the fixed phrases and shapes the portal writes are translated here,
when a page shows them. Anything else (an AWS message, a name) is shown as stored.
"""

from __future__ import annotations

import re
from functools import cache

from app.i18n import N_, _

# Fixed phrases written into audit details and Invitation.last_error (translated by `_`
# as they are; listed here so that the catalog has them).
PHRASES = (
    N_("temporary password, change required at first sign-in"),
    N_("reused codes"),
    N_("wrong"),
    N_("not_consecutive"),
    N_("clock_skew"),
    N_("ListMFADevices does not show the device"),
    N_("no such admin"),
    N_("wrong password"),
    N_("wrong code"),
    N_("link mailed"),
    N_("no link yet: resend to get one"),
    N_("an IAM user with this name already exists"),
    N_("user name taken"),
    N_("rolled back an invite that could not join the MFA group"),
    N_("deleting the never-enrolled user"),
    N_("never enrolled"),
    N_("revoked by an admin"),
    N_("replaced by reset-mfa"),
    N_("user offboarded"),
    N_("console password removed until MFA is set up again"),
    N_("devices and console password removed; new link issued"),
)

# Shapes with values in them, exactly as the services write them.
PATTERNS = (
    N_("{problem}; failed tries {tries}"),
    N_("was {state}; the previous link no longer works"),
    N_("new link mailed to {email}; the previous link no longer works"),
    N_("locked until {when} UTC"),
    N_("{users} users, {calls} IAM calls; credential report unavailable: {error}"),
    N_("{users} users, {calls} IAM calls"),
    N_("{count} item(s) removed"),
    N_("{group}: the deadline {when} UTC passed"),
    N_("{serial} (unassigned)"),
    N_("{email} (was locked)"),
    N_("{email} (was not locked)"),
    N_("{email}; MFA group now"),
    N_("{email}; MFA group at {when} UTC"),
    N_("stopped at {action}: {error}"),
    N_("revoke and delete {name}"),
    N_("reset MFA of {name}"),
    N_("offboard {name}"),
)

_FIELD = re.compile(r"\{(\w+)\}")


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    parts = _FIELD.split(pattern)
    regex = "".join(
        re.escape(part) if index % 2 == 0 else f"(?P<{part}>.+?)"
        for index, part in enumerate(parts)
    )
    return re.compile(regex, re.DOTALL)


def record_text(text: str | None) -> str:
    """A stored record in the current language, when it is one the portal itself writes."""
    if not text:
        return ""
    translated = _(text)
    if translated != text:
        return translated
    for pattern in PATTERNS:
        found = _compiled(pattern).fullmatch(text)
        if found:
            values = {name: _(value) for name, value in found.groupdict().items()}
            return _(pattern).format(**values)
    return text
