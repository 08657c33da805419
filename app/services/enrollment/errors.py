"""What the new hire's pages refuse with: unusable link, locked, expired, codes rejected."""

from __future__ import annotations

from app.errors import PortalError, ValidationError
from app.i18n import _

MAX_FAILED_TRIES = 5


class LinkUnusable(PortalError):
    """A link that leads nowhere, with what a person can do about it.

    `reason`: "unknown" (no link of this portal now: cut short, mistyped, replaced), "used" (its
    enrollment finished), or "gone" (expired, revoked, replaced). Telling them apart gives an
    attacker nothing: a token is 256 random bits, too many to find a real one by trying.
    """

    status = 404
    code = "link_unusable"

    def __init__(self, reason: str = "gone") -> None:
        self.reason = reason
        if reason == "unknown":
            message = _(
                "This link does not lead anywhere: it may be cut short, mistyped, or replaced "
                "by a newer one. Open the whole link from your latest invitation email; if it "
                "still does not work, ask the person who invited you to send it again."
            )
        elif reason == "used":
            message = _(
                "Your AWS sign-in was already set up with this link, so it is not needed any "
                "more. Sign in to the AWS console with your user name, your password and a "
                "code from your authenticator app. If you lost your password or your phone, "
                "ask your AWS administrator to reset your sign-in."
            )
        else:
            message = _(
                "This link can't be used any more. Ask the person who invited you for a new one."
            )
        super().__init__(message)


class EnrollmentLocked(PortalError):
    status = 403
    code = "enrollment_locked"

    def __init__(self) -> None:
        super().__init__(
            _(
                "This link is locked after {n} wrong tries. Ask the person who invited you "
                "to send you a new link."
            ).format(n=MAX_FAILED_TRIES)
        )


class EnrollmentExpired(PortalError):
    status = 409
    code = "enrollment_expired"

    def __init__(self) -> None:
        super().__init__(_("The time to add this code ran out. Start again to get a new QR code."))


class CodeRejected(ValidationError):
    """The two codes were refused; `field` is code1, code2 or _form."""

    code = "code_rejected"


class FinishIncomplete(PortalError):
    """MFA is bound but granting access failed; finish_enrollment can be run again."""

    status = 503
    code = "enrollment_incomplete"
