"""The new hire's enrollment: link -> virtual MFA device -> two codes -> console sign-in details.

Where each part lives:
  start   - the landing page's facts, and the link exchanged for an enrollment
  device  - the virtual MFA device (created once, deleted when replaced) and the scan page
  verify  - the two codes, EnableMFADevice, locking after too many wrong tries
  finish  - groups and the console password once MFA is bound; the done page
  expiry  - housekeeping of enrollments and links past their time
  state   - the enrollment row: loading it, conditional status changes, waiting on another request
  account - the account id and alias the pages show
  errors  - what the pages refuse with

What the web layer, the CLI and housekeeping call is imported here.
"""

from app.services.enrollment.account import AccountInfo, account_info
from app.services.enrollment.device import (
    EnrollmentView,
    ScanDetails,
    enrollment_view,
    prepare_device,
)
from app.services.enrollment.errors import (
    MAX_FAILED_TRIES,
    CodeRejected,
    EnrollmentExpired,
    EnrollmentLocked,
    FinishIncomplete,
    LinkUnusable,
)
from app.services.enrollment.expiry import expire_enrollments
from app.services.enrollment.finish import DoneView, finish_enrollment, reveal_done
from app.services.enrollment.start import Welcome, start_enrollment, welcome
from app.services.enrollment.verify import verify_codes

__all__ = [
    "MAX_FAILED_TRIES",
    "AccountInfo",
    "CodeRejected",
    "DoneView",
    "EnrollmentExpired",
    "EnrollmentLocked",
    "EnrollmentView",
    "FinishIncomplete",
    "LinkUnusable",
    "ScanDetails",
    "Welcome",
    "account_info",
    "enrollment_view",
    "expire_enrollments",
    "finish_enrollment",
    "prepare_device",
    "reveal_done",
    "start_enrollment",
    "verify_codes",
    "welcome",
]
