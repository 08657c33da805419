"""Console passwords in the sandbox: the account's password policy enforced, and a login
profile's own creation date.

AWS checks CreateLoginProfile and UpdateLoginProfile against the account's password policy
(GetAccountPasswordPolicy) and answers 400 PasswordPolicyViolation; without a custom policy its
default applies: at least 8 characters and three of the four classes (upper case, lower case,
digits, the symbols ``! @ # $ % ^ & * ( ) _ + - = [ ] { } | '``). moto accepts any password.

AWS gives a login profile the date it was made (GetLoginProfile's CreateDate); moto answers with
the user's creation date, so a password made later would look older than it is.

Written apart from the portal's own checker (app/security/temp_password.py) on purpose: a
mistake there must meet AWS's no here, not the same mistake.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from moto.core.responses import ActionResult
from moto.iam.exceptions import IAMException
from moto.iam.models import IAMBackend, User
from moto.iam.responses import IamResponse

from app.sandbox import totp
from app.sandbox.patching import patch

SYMBOLS = set("!@#$%^&*()_+-=[]{}|'")


class PasswordPolicyViolation(IAMException):
    code = "PasswordPolicyViolation"  # HTTP 400 in botocore's IAM model

    def __init__(self, message: str) -> None:
        super().__init__(self.code, message)


def policy_problems(backend: IAMBackend, password: str) -> list[str]:
    """What the password lacks under the account's policy (AWS's default without one)."""
    classes = {
        "uppercase": any(c.isascii() and c.isupper() for c in password),
        "lowercase": any(c.isascii() and c.islower() for c in password),
        "numbers": any(c.isascii() and c.isdigit() for c in password),
        "symbols": any(c in SYMBOLS for c in password),
    }
    policy = backend.account_password_policy
    problems = []
    if policy is None:
        if len(password) < 8:
            problems.append("Password should have a minimum length of 8")
        if sum(classes.values()) < 3:
            problems.append(
                "Password should have at least three of: uppercase, lowercase, numbers, symbols"
            )
        return problems
    if len(password) < int(policy.minimum_password_length or 6):
        problems.append(
            f"Password should have a minimum length of {policy.minimum_password_length}"
        )
    wanted = {
        "uppercase": policy.require_uppercase_characters,
        "lowercase": policy.require_lowercase_characters,
        "numbers": policy.require_numbers,
        "symbols": policy.require_symbols,
    }
    for name, required in wanted.items():
        if required and not classes[name]:
            problems.append(f"Password should have at least one {name.rstrip('s')}")
    return problems


def _check(backend: IAMBackend, password: str | None) -> None:
    if password is None:
        return
    problems = policy_problems(backend, password)
    if problems:
        raise PasswordPolicyViolation("; ".join(problems))


@patch(IAMBackend, "create_login_profile")
def _create_login_profile(
    self: IAMBackend, original: Callable[..., User], user_name: str, password: str
) -> User:
    self.get_user(user_name)  # AWS: an unknown user is NoSuchEntity before any policy check
    _check(self, password)
    return original(self, user_name, password)


def sandbox_utcnow() -> datetime:
    """The sandbox's clock as moto keeps its dates (naive UTC)."""
    return totp.now().astimezone(UTC).replace(tzinfo=None)


def check_update(backend: IAMBackend, password: str | None) -> None:
    """UpdateLoginProfile with a new password meets the policy too (server.py's patch)."""
    _check(backend, password)


@patch(IamResponse, "get_login_profile")
def _get_login_profile(self: IamResponse, original: Callable[..., Any]) -> ActionResult:
    user = self.backend.get_login_profile(self._get_param("UserName"))
    profile = {
        "UserName": user.name,
        "CreateDate": getattr(user, "sandbox_profile_created", user.create_date),
        "PasswordResetRequired": user.password_reset_required,
    }
    return ActionResult({"LoginProfile": profile})
