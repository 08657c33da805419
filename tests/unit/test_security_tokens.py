import base64
import hashlib
import re

from app.security.tokens import hash_token, new_token, token_matches


def test_new_token_is_url_safe_and_carries_256_random_bits():
    token = new_token()
    assert re.fullmatch(r"[A-Za-z0-9_-]+", token)
    assert len(base64.urlsafe_b64decode(token + "=")) == 32


def test_new_tokens_do_not_repeat():
    assert len({new_token() for _ in range(1000)}) == 1000


def test_hash_token_is_sha256_hex_of_the_token():
    assert hash_token("abc") == ("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    token = new_token()
    assert hash_token(token) == hashlib.sha256(token.encode()).hexdigest()
    assert token not in hash_token(token)


def test_token_matches_only_its_own_hash():
    token = new_token()
    stored = hash_token(token)
    assert token_matches(token, stored)
    assert not token_matches(new_token(), stored)
    assert not token_matches(token[:-1], stored)
    # Someone who read the database must not be able to present the hash itself.
    assert not token_matches(stored, stored)
    assert not token_matches("", stored)
    assert not token_matches(token, "")


def test_token_matches_survives_odd_input_from_a_url():
    stored = hash_token(new_token())
    assert not token_matches("ünïcödé-✓", stored)
    assert not token_matches(new_token(), "not-hex-ü")
