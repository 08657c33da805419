import pytest
from argon2 import PasswordHasher

from app.security.passwords import (
    ERR_CONTAINS_EMAIL,
    ERR_TOO_COMMON,
    ERR_TOO_LONG,
    ERR_TOO_SHORT,
    check_new_admin_password,
    hash_password,
    needs_rehash,
    verify_against_dummy,
    verify_password,
)

PW = "correct horse battery staple"


def test_hash_is_salted_argon2id_without_the_password():
    first, second = hash_password(PW), hash_password(PW)
    assert first.startswith("$argon2id$")
    assert first != second
    assert PW not in first


def test_verify_accepts_the_right_password_only():
    stored = hash_password(PW)
    assert verify_password(stored, PW)
    assert not verify_password(stored, PW + " ")
    assert not verify_password(stored, PW.upper())
    assert not verify_password(stored, "")


@pytest.mark.parametrize(
    "garbage",
    ["", "not a hash", "$argon2id$v=19$m=65536", "$2b$12$abcdefghijklmnopqrstuv"],
)
def test_verify_returns_false_for_a_garbage_hash(garbage):
    assert verify_password(garbage, PW) is False


def test_verify_against_dummy_is_always_false():
    assert verify_against_dummy(PW) is False


def test_needs_rehash_flags_weaker_parameters_and_garbage():
    assert not needs_rehash(hash_password(PW))
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PW)
    assert needs_rehash(weak)
    assert needs_rehash("garbage")


@pytest.mark.parametrize(
    ("pw", "email", "expected"),
    [
        ("Tr0ub4dor&3xyz", "alice@example.com", None),
        ("a" * 12, "alice@example.com", ERR_TOO_COMMON),
        ("password1234", "alice@example.com", ERR_TOO_COMMON),
        ("iloveyou2015", "alice@example.com", ERR_TOO_COMMON),
        ("P@ssw0rd12345", "alice@example.com", ERR_TOO_COMMON),
        ("alice-example-1", "alice@example.com", ERR_CONTAINS_EMAIL),
        ("correct horse battery staple", "alice@example.com", None),
        ("short-pw", "alice@example.com", ERR_TOO_SHORT),
        ("elevenchars", "alice@example.com", ERR_TOO_SHORT),
        ("x" * 1025, "alice@example.com", ERR_TOO_LONG),
        ("alice@example.com", "alice@example.com", ERR_CONTAINS_EMAIL),
        ("ALICE@Example.COM", "alice@example.com", ERR_CONTAINS_EMAIL),
        ("my alice@example.com!", "alice@example.com", ERR_CONTAINS_EMAIL),
        ("margaretsmith", "MargaretSmith@example.com", ERR_CONTAINS_EMAIL),
        ("2024-MargaretSmith!", "margaretsmith@example.com", ERR_CONTAINS_EMAIL),
        # A two-letter local part is too short to forbid everywhere in the password.
        ("joyful-journey-22", "jo@example.com", None),
    ],
)
def test_check_new_admin_password(pw, email, expected):
    assert check_new_admin_password(pw, email) == expected


def test_a_breached_password_of_any_length_is_refused():
    assert check_new_admin_password("password" * 20, "alice@example.com") == ERR_TOO_COMMON


@pytest.mark.slow  # seconds of argon2 hashing or retries: make test runs it, test-fast not
def test_hashes_run_a_few_at_a_time(monkeypatch):
    """Sixteen sign-ins at once: at most HASHES_AT_ONCE argon2 runs (64 MiB each) at a time."""
    import threading

    from app.security import passwords

    running, peak = 0, 0
    lock = threading.Lock()

    class Counting(PasswordHasher):
        def verify(self, hash, password):  # type: ignore[no-untyped-def, override]
            nonlocal running, peak
            with lock:
                running += 1
                peak = max(peak, running)
            try:  # argon2 releases the GIL: without the limit all sixteen would run at once
                return super().verify(hash, password)
            finally:
                with lock:
                    running -= 1

    stored = hash_password(PW)
    monkeypatch.setattr(passwords, "_hasher", Counting())
    threads = [threading.Thread(target=verify_password, args=(stored, "wrong")) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert 1 <= peak <= passwords.HASHES_AT_ONCE


def test_the_dummy_hash_is_made_on_first_use_not_at_import():
    import subprocess
    import sys

    code = (
        "import app.security.passwords as p; print(p._dummy_hash.cache_info().currsize); "
        "p.verify_against_dummy('x'); print(p._dummy_hash.cache_info().currsize)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["0", "1"]
