"""The account id and alias the pages show (read-only, cached per process)."""

from __future__ import annotations

import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any

from app.services.portal import Portal

_ACCOUNT_TTL_SECONDS = 300.0


@dataclass(frozen=True)
class AccountInfo:
    account_id: str
    alias: str | None

    @property
    def label(self) -> str:
        return self.alias or self.account_id

    @property
    def issuer(self) -> str:
        return self.alias or f"AWS {self.account_id}"

    @property
    def console_url(self) -> str:
        return f"https://{self.label}.signin.aws.amazon.com/console"


_account_cache: dict[int, tuple[weakref.ref[Any], float, AccountInfo]] = {}
_account_lock = threading.Lock()


def account_info(portal: Portal) -> AccountInfo:
    """The account id and alias; cached a few minutes per IAM client (both rarely change)."""
    client = portal.iam_clients[0]
    now = time.monotonic()
    with _account_lock:
        cached = _account_cache.get(id(client))
        if cached is not None and cached[0]() is client and cached[1] > now:
            return cached[2]
    iam = portal.iam()
    info = AccountInfo(account_id=iam.caller_identity()["account"], alias=iam.account_alias())
    with _account_lock:
        for key in [k for k, v in _account_cache.items() if v[0]() is None]:
            del _account_cache[key]
        _account_cache[id(client)] = (weakref.ref(client), now + _ACCOUNT_TTL_SECONDS, info)
    return info
