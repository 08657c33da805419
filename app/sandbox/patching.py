"""How the sandbox corrects moto: patches registered here, installed once, obeying one switch.

moto keeps its patched classes process-global, so the switch is too: every sandbox server in
this process, and any in-process `moto.mock_aws`, sees the same fidelity setting.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

# Read by every patch at call time; set by start_sandbox, restored by Sandbox.stop.
_enabled = True
_installed = False
_install_lock = threading.Lock()


def set_fidelity(enabled: bool) -> bool:
    """Turn the patches on or off for every sandbox in this process; returns the previous value."""
    global _enabled
    previous, _enabled = _enabled, enabled
    return previous


F = TypeVar("F", bound=Callable[..., Any])
_PATCHES: list[tuple[type, str, Callable[..., Any]]] = []


def patch(cls: type, name: str) -> Callable[[F], F]:
    """Register `fix(self, original, *args)` to replace `cls.name` while fidelity is on."""

    def register(fix: F) -> F:
        _PATCHES.append((cls, name, fix))
        return fix

    return register


def _unimplemented(self: Any, *args: Any, **kwargs: Any) -> Any:
    raise NotImplementedError("not implemented by moto")


def _wrap(original: Callable[..., Any], fix: Callable[..., Any]) -> Callable[..., Any]:
    def patched(self: Any, *args: Any, **kwargs: Any) -> Any:
        if _enabled:
            return fix(self, original, *args, **kwargs)
        return original(self, *args, **kwargs)

    patched.__name__ = original.__name__ if original is not _unimplemented else fix.__name__
    return patched


def install_fidelity_fixes() -> None:
    """Patch moto's IAM classes once; the patches obey the fidelity switch."""
    global _installed
    with _install_lock:
        if _installed:
            return
        for cls, name, fix in _PATCHES:
            setattr(cls, name, _wrap(getattr(cls, name, _unimplemented), fix))
        _installed = True
