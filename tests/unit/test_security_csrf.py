import re

from app.security.csrf import csrf_token_for, csrf_valid

SECRET = "app-secret-for-tests"


def test_token_is_url_safe_and_stable_for_a_session():
    token = csrf_token_for(secret=SECRET, session_id="s1")
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", token)
    assert token == csrf_token_for(secret=SECRET, session_id="s1")
    assert "s1" not in token


def test_token_is_valid_only_for_its_session_and_secret():
    token = csrf_token_for(secret=SECRET, session_id="s1")
    assert csrf_valid(secret=SECRET, session_id="s1", token=token)
    assert not csrf_valid(secret=SECRET, session_id="s2", token=token)
    assert not csrf_valid(secret="another-secret", session_id="s1", token=token)


def test_malformed_or_missing_tokens_are_refused_without_error():
    token = csrf_token_for(secret=SECRET, session_id="s1")
    for bad in ["", token[:-1], token + "A", token + "=", "ü" * 43, " " + token]:
        assert not csrf_valid(secret=SECRET, session_id="s1", token=bad)


def test_no_session_means_no_valid_token():
    token = csrf_token_for(secret=SECRET, session_id="")
    assert not csrf_valid(secret=SECRET, session_id="", token=token)
