"""Authenticated encryption of secrets kept at rest (MFA seeds), keyed from the app secret."""

from __future__ import annotations

import base64
import binascii
import functools
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

# The version prefix lets a later key scheme or cipher coexist with stored values.
_PREFIX = "v1."
_NONCE_BYTES = 12
_SALT = b"iam-onboard secretbox v1"


class SecretBoxError(Exception):
    """A stored secret could not be decrypted: tampered, truncated, or another key."""


def _aead(app_secret: str, purpose: str) -> AESGCM:
    hkdf = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=_SALT,
        info=b"iam-onboard:" + purpose.encode("utf-8"),
    )
    return AESGCM(hkdf.derive(app_secret.encode("utf-8")))


class SecretBox:
    """AES-256-GCM with a key derived by HKDF-SHA256 from the app secret and a purpose.

    While the app secret is being rotated, values sealed with the previous secret still open
    (`previous`); new values are always sealed with the current one.
    """

    def __init__(self, app_secret: str, *, purpose: str, previous: str | None = None) -> None:
        if not app_secret:
            raise ValueError("app_secret must not be empty")
        if not purpose:
            raise ValueError("purpose must not be empty")
        self._aead = _aead(app_secret, purpose)
        self._previous = _aead(previous, purpose) if previous else None

    def encrypt(self, plaintext: str, *, bound_to: str = "") -> str:
        """Return an ASCII token of the encrypted text; bound_to must be given again to decrypt."""
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext.encode("utf-8"), bound_to.encode("utf-8"))
        return _PREFIX + base64.urlsafe_b64encode(nonce + sealed).rstrip(b"=").decode("ascii")

    def decrypt(self, token: str, *, bound_to: str = "") -> str:
        """Return the plaintext of a token made by encrypt; raise SecretBoxError otherwise."""
        return self.open(token, bound_to=bound_to)[0]

    def open(self, token: str, *, bound_to: str = "") -> tuple[str, bool]:
        """The plaintext, and whether it was sealed with the previous secret (seal it again)."""
        if not token.startswith(_PREFIX):
            raise SecretBoxError("unknown secret format")
        body = token[len(_PREFIX) :]
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except (binascii.Error, ValueError) as exc:
            raise SecretBoxError("malformed secret") from exc
        if len(raw) < _NONCE_BYTES + 16:
            raise SecretBoxError("malformed secret")
        nonce, sealed, aad = raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], bound_to.encode("utf-8")
        try:
            return self._aead.decrypt(nonce, sealed, aad).decode("utf-8"), False
        except InvalidTag as exc:
            if self._previous is None:
                raise SecretBoxError("secret failed authentication") from exc
        try:
            return self._previous.decrypt(nonce, sealed, aad).decode("utf-8"), True
        except InvalidTag as exc:
            raise SecretBoxError("secret failed authentication") from exc


@functools.lru_cache(maxsize=16)
def secret_box(app_secret: str, purpose: str, previous: str | None = None) -> SecretBox:
    """The SecretBox of a purpose, its key derived once per process (HKDF costs more than
    sealing a value; the key never changes while the app secret stays the same)."""
    return SecretBox(app_secret, purpose=purpose, previous=previous)
