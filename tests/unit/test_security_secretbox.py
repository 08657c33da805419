import base64

import pytest

from app.security.secretbox import SecretBox, SecretBoxError, secret_box

APP_SECRET = "app-secret-for-tests"
SEED = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


@pytest.fixture
def box():
    return SecretBox(APP_SECRET, purpose="mfa-seed")


def test_round_trip(box):
    assert box.decrypt(box.encrypt(SEED)) == SEED
    assert box.decrypt(box.encrypt("")) == ""
    assert box.decrypt(box.encrypt("ünïcödé ✓")) == "ünïcödé ✓"


def test_ciphertext_is_ascii_and_hides_the_plaintext(box):
    token = box.encrypt(SEED)
    assert token.isascii()
    assert SEED not in token
    assert SEED[:8] not in token
    assert SEED.encode() not in base64.urlsafe_b64decode(token[3:] + "==")


def test_same_plaintext_encrypts_differently_each_time(box):
    assert box.encrypt(SEED) != box.encrypt(SEED)


def test_other_purpose_or_other_secret_cannot_decrypt(box):
    token = box.encrypt(SEED)
    with pytest.raises(SecretBoxError):
        SecretBox(APP_SECRET, purpose="something-else").decrypt(token)
    with pytest.raises(SecretBoxError):
        SecretBox("another-secret", purpose="mfa-seed").decrypt(token)
    assert SecretBox(APP_SECRET, purpose="mfa-seed").decrypt(token) == SEED


def test_every_tampered_character_is_detected(box):
    token = box.encrypt(SEED)
    # The last character may carry only padding bits, so flipping it can be a no-op.
    for i in range(3, len(token) - 1):
        replacement = "A" if token[i] != "A" else "B"
        with pytest.raises(SecretBoxError):
            box.decrypt(token[:i] + replacement + token[i + 1 :])


@pytest.mark.parametrize("bad", ["", "v1.", "v1.AAAA", "v2.abcdef", "hello", "v1.ü€"])
def test_malformed_tokens_raise_secretbox_error(box, bad):
    with pytest.raises(SecretBoxError):
        box.decrypt(bad)


def test_truncated_token_is_refused(box):
    token = box.encrypt(SEED)
    with pytest.raises(SecretBoxError):
        box.decrypt(token[:-4])


def test_bound_ciphertext_only_decrypts_for_the_same_row(box):
    token = box.encrypt(SEED, bound_to="enrollment:1")
    assert box.decrypt(token, bound_to="enrollment:1") == SEED
    with pytest.raises(SecretBoxError):
        box.decrypt(token, bound_to="enrollment:2")
    with pytest.raises(SecretBoxError):
        box.decrypt(token)


def test_empty_secret_or_purpose_is_refused():
    with pytest.raises(ValueError):
        SecretBox("", purpose="mfa-seed")
    with pytest.raises(ValueError):
        SecretBox(APP_SECRET, purpose="")


def test_the_box_of_a_purpose_is_derived_once_and_keeps_purposes_apart():
    box = secret_box("app secret", "mfa-seed")
    assert secret_box("app secret", "mfa-seed") is box
    sealed = box.encrypt("JBSWY3DPEHPK3PXP")
    assert SecretBox("app secret", purpose="mfa-seed").decrypt(sealed) == "JBSWY3DPEHPK3PXP"
    with pytest.raises(SecretBoxError):
        secret_box("app secret", "temp-password").decrypt(sealed)
    with pytest.raises(SecretBoxError):
        secret_box("another secret", "mfa-seed").decrypt(sealed)
