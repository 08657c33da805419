"""How the portal is served by uvicorn: one place, so every server trusts the same proxies.

uvicorn believes X-Forwarded-For/-Proto from 127.0.0.1 unless told otherwise; the portal
turns that off and applies IAM_ONBOARD_TRUSTED_PROXIES itself (app.main.create_app), so a
server started here, in a test or in the benchmark gives rate limits and the audit log the
same client address.
"""

from __future__ import annotations

from typing import Any

import uvicorn

from app.main import create_app
from app.services.portal import Portal


def server_config(portal: Portal, *, host: str, port: int, **options: Any) -> uvicorn.Config:
    """A uvicorn configuration for the portal's app; `options` go to uvicorn as they are."""
    # access_log is off: the app logs each request itself, with tokens taken out of paths.
    options.setdefault("access_log", False)
    options.setdefault("log_level", "warning")
    # The app handles proxy headers itself, from the trusted list only (never uvicorn's default).
    options["proxy_headers"] = False
    # No page uses WebSockets: "none" spares the import of a WebSocket library (~3 MiB).
    options.setdefault("ws", "none")
    return uvicorn.Config(create_app(portal), host=host, port=port, **options)


def serve(portal: Portal, *, host: str, port: int) -> None:
    """Serve until Ctrl-C (what `iam-onboard serve` and `demo` run)."""
    uvicorn.Server(server_config(portal, host=host, port=port)).run()
