"""Stored records (audit details, an invitation's last error) shown in the reader's language.

The records themselves stay in English, so the audit log reads the same in every export
whoever caused the event; the fixed phrases and shapes the portal writes are translated here,
when a page shows them. Anything else (an AWS message, a name) is shown as stored.
"""

from __future__ import annotations

import re
from functools import cache

from app.i18n import N_, _, ngettext

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

# Terse codes the services store (exports and searches keep them), and the sentence a page shows.
SENTENCES = {
    "not_consecutive": N_("The two codes were not one after the other."),
    "clock_skew": N_("The codes belong to another time: the phone's clock may be wrong."),
    "wrong": N_("A code was wrong."),
    "reused codes": N_("The codes had been used already."),
}

# Shapes with values in them, exactly as the services write them.
PATTERNS = (
    N_("was {state}; the previous link no longer works"),
    N_("new link mailed to {email}; the previous link no longer works"),
    N_("locked until {when} UTC"),
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


_TRIES = re.compile(r"(?P<problem>.+); failed tries (?P<used>\d+)/(?P<most>\d+)", re.DOTALL)
_GROUPS = re.compile(r"(?:email=(?P<email>\S+) )?groups=(?P<groups>\S*)")
_REFRESH = re.compile(r"(?P<users>\d+) users, (?P<calls>\d+) IAM calls(?P<rest>; .*)?", re.DOTALL)


def _sentence(text: str) -> str | None:
    """The shapes that read as jargon when shown as stored, as sentences (None: not one)."""
    if text in SENTENCES:
        return _(SENTENCES[text])
    found = _TRIES.fullmatch(text)
    if found:
        problem = found["problem"]
        shown = _(SENTENCES[problem]) if problem in SENTENCES else record_text(problem)
        tries = _("Wrong tries so far: {used} of {most}.").format(
            used=found["used"], most=found["most"]
        )
        return f"{shown} {tries}"
    found = _GROUPS.fullmatch(text)
    if found:
        groups = found["groups"].strip("-").replace(",", ", ")
        email = found["email"]
        if email:
            if groups:
                return _("Email {email}; extra groups: {groups}").format(email=email, groups=groups)
            return _("Email {email}; no extra groups").format(email=email)
        return _("Extra groups: {groups}").format(groups=groups) if groups else _("No extra groups")
    found = _REFRESH.fullmatch(text)
    if found:
        users, calls = int(found["users"]), int(found["calls"])
        counts = _("{users}, {calls}").format(
            users=ngettext("%(num)d user", "%(num)d users", users) % {"num": users},
            calls=ngettext("%(num)d IAM call", "%(num)d IAM calls", calls) % {"num": calls},
        )
        if found["rest"]:
            error = found["rest"].removeprefix("; credential report unavailable: ")
            return _("{counts}; credential report unavailable: {error}").format(
                counts=counts, error=error
            )
        return counts
    return None


def record_text(text: str | None) -> str:
    """A stored record in the current language, when it is one the portal itself writes."""
    if not text:
        return ""
    sentence = _sentence(text)
    if sentence is not None:
        return sentence
    translated = _(text)
    if translated != text:
        return translated
    for pattern in PATTERNS:
        found = _compiled(pattern).fullmatch(text)
        if found:
            values = {name: _(value) for name, value in found.groupdict().items()}
            return _(pattern).format(**values)
    return text
