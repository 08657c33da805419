"""The portal's one error base class: a user-facing message, a status and a stable code."""

from __future__ import annotations


class PortalError(Exception):
    """A failure the portal explains to a person in a plain sentence."""

    status: int = 400
    code: str = "error"

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code


class ConfigError(PortalError):
    code = "config_error"
    status = 500


class ValidationError(PortalError):
    """Input that cannot be accepted; `field` names the form field it belongs under."""

    code = "invalid"
    status = 400

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.field = field


class NotFound(PortalError):
    code = "not_found"
    status = 404


class Conflict(PortalError):
    code = "conflict"
    status = 409
