"""AWS errors turned into the portal's own errors, each with a plain message."""

from __future__ import annotations

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ParamValidationError,
    ReadTimeoutError,
)

from app.errors import PortalError
from app.i18n import _


class AwsError(PortalError):
    """An IAM call failed; `request_id` is AWS's id for it, for the audit log."""

    status = 502
    code = "aws_error"

    def __init__(
        self,
        message: str,
        *,
        action: str = "",
        aws_code: str = "",
        request_id: str | None = None,
        retried: bool = False,
    ):
        super().__init__(message)
        self.action = action
        self.aws_code = aws_code
        self.request_id = request_id
        # botocore sent the call more than once (an earlier attempt's answer was lost or
        # refused): this answer is to the last attempt.
        self.retried = retried


class AccessDenied(AwsError):
    status = 502
    code = "aws_access_denied"


class Throttled(AwsError):
    status = 503
    code = "aws_throttled"


class AwsUnavailable(AwsError):
    status = 503
    code = "aws_unavailable"


class AwsCredentialsMissing(AwsError):
    status = 500
    code = "aws_credentials_missing"


class NoSuchEntity(AwsError):
    status = 404
    code = "aws_no_such_entity"


class EntityAlreadyExists(AwsError):
    status = 409
    code = "aws_entity_already_exists"


class DeleteConflict(AwsError):
    status = 409
    code = "aws_delete_conflict"


class InvalidAuthenticationCode(AwsError):
    status = 400
    code = "aws_invalid_authentication_code"


class LimitExceeded(AwsError):
    status = 409
    code = "aws_limit_exceeded"


class EntityTemporarilyUnmodifiable(AwsError):
    status = 409
    code = "aws_entity_temporarily_unmodifiable"


class ConcurrentModification(AwsError):
    status = 409
    code = "aws_concurrent_modification"


class PasswordPolicyViolation(AwsError):
    status = 400
    code = "aws_password_policy_violation"


class ReportNotReady(AwsError):
    status = 503
    code = "aws_report_not_ready"


class InvalidParameter(AwsError):
    """botocore refused a value before sending it (a name IAM cannot hold): the caller's error."""

    status = 400
    code = "aws_invalid_parameter"


_BY_CODE: dict[str, type[AwsError]] = {
    "AccessDenied": AccessDenied,
    "AccessDeniedException": AccessDenied,
    "UnauthorizedOperation": AccessDenied,
    "Throttling": Throttled,
    "ThrottlingException": Throttled,
    "RequestLimitExceeded": Throttled,
    "ServiceFailure": AwsUnavailable,
    "ServiceUnavailable": AwsUnavailable,
    "InternalFailure": AwsUnavailable,
    "NoSuchEntity": NoSuchEntity,
    "EntityAlreadyExists": EntityAlreadyExists,
    "DeleteConflict": DeleteConflict,
    "InvalidAuthenticationCode": InvalidAuthenticationCode,
    "LimitExceeded": LimitExceeded,
    "EntityTemporarilyUnmodifiable": EntityTemporarilyUnmodifiable,
    "ConcurrentModification": ConcurrentModification,
    "PasswordPolicyViolation": PasswordPolicyViolation,
    "ReportNotPresent": ReportNotReady,
    "ReportExpired": ReportNotReady,
    "ReportInProgress": ReportNotReady,
}


def _message(kind: type[AwsError], action: str, aws_message: str) -> str:
    iam_action = f"iam:{action}" if action != "GetCallerIdentity" else "sts:GetCallerIdentity"
    if kind is AccessDenied:
        return _(
            "The portal's AWS identity is not allowed to call {action}. "
            "Add it to that identity's policy (see `iam-onboard policy runtime`)."
        ).format(action=iam_action)
    if kind is Throttled:
        return _("AWS is throttling the portal's requests right now. Wait a minute and try again.")
    if kind is AwsUnavailable:
        return _("AWS IAM is not answering properly right now. Wait a minute and try again.")
    if kind is NoSuchEntity:
        return _("AWS says it does not exist: {message}").format(message=aws_message)
    if kind is EntityAlreadyExists:
        return _("AWS says it already exists: {message}").format(message=aws_message)
    if kind is DeleteConflict:
        return _("AWS refused the deletion because something is still attached: {message}").format(
            message=aws_message
        )
    if kind is InvalidAuthenticationCode:
        return _("AWS did not accept the two codes. Wait for a fresh code and try again.")
    if kind is LimitExceeded:
        return _("An AWS limit was reached: {message}").format(message=aws_message)
    if kind is EntityTemporarilyUnmodifiable:
        return _(
            "AWS cannot change this user for a few minutes (it was recently deleted and "
            "re-created). Try again in a few minutes."
        )
    if kind is ConcurrentModification:
        return _("Someone else changed this in AWS at the same moment. Try again.")
    if kind is PasswordPolicyViolation:
        return _("The password breaks the account's password policy: {message}").format(
            message=aws_message
        )
    if kind is ReportNotReady:
        return _("AWS is still preparing the credential report. Try again in a moment.")
    return _("AWS refused {action}: {message}").format(action=iam_action, message=aws_message)


def translate(exc: Exception, action: str) -> AwsError:
    """Map a botocore exception raised by `action` to the portal's own error."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        aws_code = str(error.get("Code", ""))
        aws_message = str(error.get("Message", "")).strip() or aws_code
        request_id = exc.response.get("ResponseMetadata", {}).get("RequestId")
        retried = bool(exc.response.get("ResponseMetadata", {}).get("RetryAttempts"))
        kind = _BY_CODE.get(aws_code, AwsError)
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if kind is AwsError and isinstance(status, int) and status >= 500:
            kind = AwsUnavailable
        return kind(
            _message(kind, action, aws_message),
            action=action,
            aws_code=aws_code,
            request_id=request_id,
            retried=retried,
        )
    if isinstance(exc, NoCredentialsError):
        return AwsCredentialsMissing(
            _(
                "The portal found no AWS credentials. Give it credentials the usual AWS way "
                "(environment, profile or instance role)."
            ),
            action=action,
        )
    if isinstance(
        exc,
        EndpointConnectionError | ConnectTimeoutError | ReadTimeoutError | ConnectionClosedError,
    ):
        return AwsUnavailable(
            _(
                "The portal could not reach AWS IAM (the connection failed or timed out). "
                "Try again in a minute."
            ),
            action=action,
        )
    if isinstance(exc, ParamValidationError):
        return InvalidParameter(
            _("AWS IAM does not accept this value: {problem}").format(problem=exc), action=action
        )
    if isinstance(exc, BotoCoreError):
        return AwsUnavailable(
            _("Calling AWS IAM failed: {problem}").format(problem=exc), action=action
        )
    raise exc
