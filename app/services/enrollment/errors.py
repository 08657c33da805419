"""What the new hire's pages refuse with: unusable link, locked, expired, codes rejected."""

from __future__ import annotations

from app.errors import PortalError, ValidationError
from app.i18n import _

MAX_FAILED_TRIES = 5


class LinkUnusable(PortalError):
    """Unknown, expired, used and revoked links all get this one answer (nothing to probe)."""

    status = 404
    code = "link_unusable"

    def __init__(self) -> None:
        super().__init__(
            _("This link can't be used any more. Ask the person who invited you for a new one.")
        )


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
