"""Random bearer tokens (invitations, API tokens): only their hash is ever stored."""

from __future__ import annotations

import hashlib
import hmac
import secrets


def new_token() -> str:
    """Return a fresh URL-safe token carrying 256 random bits."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """Return the SHA-256 hex digest under which a token is stored."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def token_matches(token: str, stored_hash: str) -> bool:
    """Tell in constant time whether a presented token hashes to the stored hash."""
    # Compare bytes: hmac.compare_digest refuses non-ASCII str, and a token comes from a URL.
    return hmac.compare_digest(hash_token(token).encode(), stored_hash.encode("utf-8"))
