"""Admin accounts: one-time setup links, password + portal TOTP, sign-in with lockout."""

from app.services.admins.accounts import (
    AdminInfo,
    active_admin,
    admin_by_id,
    is_set_up,
    normalize_email,
    unlock_admin,
)
from app.services.admins.lockout import (
    LOCK_THRESHOLD,
    LOCK_WINDOW,
    AccountLocked,
    TooManyAttempts,
)
from app.services.admins.setup import (
    SETUP_TTL,
    AdminAlreadySetUp,
    SetupLink,
    TotpSetup,
    admin_for_setup,
    create_admin,
    finish_totp_setup,
    new_pending_seed,
    set_setup_password,
    totp_setup,
)
from app.services.admins.sign_in import (
    SignInRefused,
    record_local_refused,
    record_sign_out,
    sign_in_code,
    sign_in_password,
    verify_step_up,
)

__all__ = [
    "LOCK_THRESHOLD",
    "LOCK_WINDOW",
    "SETUP_TTL",
    "AccountLocked",
    "AdminAlreadySetUp",
    "AdminInfo",
    "SetupLink",
    "SignInRefused",
    "TooManyAttempts",
    "TotpSetup",
    "active_admin",
    "admin_by_id",
    "admin_for_setup",
    "create_admin",
    "finish_totp_setup",
    "is_set_up",
    "new_pending_seed",
    "normalize_email",
    "record_local_refused",
    "record_sign_out",
    "set_setup_password",
    "sign_in_code",
    "sign_in_password",
    "totp_setup",
    "unlock_admin",
    "verify_step_up",
]
