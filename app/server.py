"""How the portal is served by uvicorn: one place, so every server trusts the same proxies.

uvicorn believes X-Forwarded-For/-Proto from 127.0.0.1 unless told otherwise; the portal
turns that off and applies IAM_ONBOARD_TRUSTED_PROXIES itself (app.main.create_app), so a
server started here, in a test or in the benchmark gives rate limits and the audit log the
same client address.
"""

from __future__ import annotations

from typing import Any

import uvicorn
from fastapi import FastAPI

from app.config import load_settings
from app.logs import setup_logging
from app.main import create_app
from app.services.portal import Portal, build_portal


def server_config(portal: Portal, *, host: str, port: int, **options: Any) -> uvicorn.Config:
    """A uvicorn configuration for the portal's app; `options` go to uvicorn as they are."""
    # access_log is off: the app logs each request itself, with tokens taken out of paths.
    options.setdefault("access_log", False)
    options.setdefault("log_level", "warning")
    # The app handles proxy headers itself, from the trusted list only (never uvicorn's default).
    options["proxy_headers"] = False
    # No page uses WebSockets: "none" spares the import of a WebSocket library (~3 MiB).
    options.setdefault("ws", "none")
    _json_logs(portal.settings.log_format, options)
    return uvicorn.Config(create_app(portal), host=host, port=port, **options)


def _json_logs(log_format: str, options: dict[str, Any]) -> None:
    # uvicorn's own logging configuration writes its loggers in its own text format; with
    # none, their records reach the root logger's handler (app.logs), JSON or text.
    if log_format == "json":
        options.setdefault("log_config", None)


def serve(portal: Portal, *, host: str, port: int) -> None:
    """Serve until Ctrl-C (what `iam-onboard serve` and `demo` run)."""
    uvicorn.Server(server_config(portal, host=host, port=port)).run()


def app_factory() -> FastAPI:
    """The app of one worker of `serve --workers N` (uvicorn imports this in each process).

    The parent process migrated the database and runs housekeeping; a worker only serves.
    """
    settings = load_settings()
    setup_logging(settings.log_level, settings.log_format)
    return create_app(build_portal(settings, migrate=False))


def serve_workers(*, host: str, port: int, workers: int, log_format: str) -> None:
    """Serve with `workers` processes sharing the port, until Ctrl-C or SIGTERM."""
    options: dict[str, Any] = {
        "factory": True,
        "workers": workers,
        "access_log": False,
        "log_level": "warning",
        "proxy_headers": False,  # as server_config: the app applies the trusted proxies
        "ws": "none",
    }
    _json_logs(log_format, options)
    uvicorn.run("app.server:app_factory", host=host, port=port, **options)
