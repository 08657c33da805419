"""CSRF tokens bound to the server-side session they were issued for."""

from __future__ import annotations

import base64
import hashlib
import hmac


def csrf_token_for(*, secret: str, session_id: str) -> str:
    """Return the CSRF token of a session: URL-safe base64 of HMAC-SHA256(session id)."""
    mac = hmac.new(secret.encode("utf-8"), b"csrf:" + session_id.encode("utf-8"), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode("ascii")


def csrf_valid(*, secret: str, session_id: str, token: str) -> bool:
    """Tell in constant time whether the token was issued for this session."""
    if not session_id or not token:
        return False
    expected = csrf_token_for(secret=secret, session_id=session_id)
    return hmac.compare_digest(expected.encode("ascii"), token.encode("utf-8"))
