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


class SecretBox:
    """AES-256-GCM with a key derived by HKDF-SHA256 from the app secret and a purpose."""

    def __init__(self, app_secret: str, *, purpose: str) -> None:
        if not app_secret:
            raise ValueError("app_secret must not be empty")
        if not purpose:
            raise ValueError("purpose must not be empty")
        hkdf = HKDF(
            algorithm=hashes.SHA256(),
            length=32,
            salt=_SALT,
            info=b"iam-onboard:" + purpose.encode("utf-8"),
        )
        self._aead = AESGCM(hkdf.derive(app_secret.encode("utf-8")))

    def encrypt(self, plaintext: str, *, bound_to: str = "") -> str:
        """Return an ASCII token of the encrypted text; bound_to must be given again to decrypt."""
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext.encode("utf-8"), bound_to.encode("utf-8"))
        return _PREFIX + base64.urlsafe_b64encode(nonce + sealed).rstrip(b"=").decode("ascii")

    def decrypt(self, token: str, *, bound_to: str = "") -> str:
        """Return the plaintext of a token made by encrypt; raise SecretBoxError otherwise."""
        if not token.startswith(_PREFIX):
            raise SecretBoxError("unknown secret format")
        body = token[len(_PREFIX) :]
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except (binascii.Error, ValueError) as exc:
            raise SecretBoxError("malformed secret") from exc
        if len(raw) < _NONCE_BYTES + 16:
            raise SecretBoxError("malformed secret")
        try:
            plain = self._aead.decrypt(
                raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], bound_to.encode("utf-8")
            )
        except InvalidTag as exc:
            raise SecretBoxError("secret failed authentication") from exc
        return plain.decode("utf-8")


@functools.lru_cache(maxsize=16)
def secret_box(app_secret: str, purpose: str) -> SecretBox:
    """The SecretBox of a purpose, its key derived once per process (HKDF costs more than
    sealing a value; the key never changes while the app secret stays the same)."""
    return SecretBox(app_secret, purpose=purpose)
