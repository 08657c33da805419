"""Request paths are logged without the tokens they carry."""

from app.web.middleware import redact_path


def test_token_paths_are_redacted_and_fixed_paths_kept():
    assert redact_path("/enroll/abcDEF123_-xyz") == "/enroll/[token]"
    assert redact_path("/admin/setup/abcDEF123") == "/admin/setup/[token]"
    assert redact_path("/enroll/verify") == "/enroll/verify"
    assert redact_path("/enroll/done") == "/enroll/done"
    assert redact_path("/admin/setup/totp") == "/admin/setup/totp"
    assert redact_path("/admin/dashboard") == "/admin/dashboard"
