"""What the attack-matrix tests share: the app's routes, a demo whose output is read as it runs."""

from __future__ import annotations

import re
import signal
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from tests.helpers import Demo, start_demo

UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # as declared, with {params}

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def params(self) -> list[str]:
        return re.findall(r"{([^}:]+)(?::[^}]*)?}", self.path)


def _declared(app: FastAPI) -> Iterator[Any]:
    try:  # FastAPI >= 0.16x keeps included routers nested; this walks them
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI: app.routes is already flat
        yield from app.routes
        return
    yield from iter_route_contexts(app.routes)


def app_routes(app: FastAPI) -> list[Route]:
    """Every (method, path) the app answers; a mount counts as GET on `{path}` below it."""
    found: set[Route] = set()
    for route in _declared(app):
        path = str(route.path)
        methods = set(getattr(route, "methods", None) or ())
        if not methods:  # a mount: static files
            found.add(Route("GET", path + "/{path}"))
        for method in methods - {"HEAD"}:  # HEAD is GET without a body
            found.add(Route(method, path))
    return sorted(found, key=lambda r: (r.path, r.method))


def fill(template: str, /, **values: str | int) -> str:
    """The path with its {params} replaced (every param must be given)."""
    out = template
    for name, value in values.items():
        out = re.sub(r"{" + name + r"(?::[^}]*)?}", str(value), out)
    assert "{" not in out, f"no value for a parameter of {template}"
    return out


class RunningDemo:
    """A real `iam-onboard demo` whose output is read all along (a full pipe would stall it)."""

    def __init__(self, tmp_path: Path, env: dict[str, str] | None = None):
        self.demo: Demo = start_demo(tmp_path, env=env)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @property
    def url(self) -> str:
        return self.demo.portal_url

    @property
    def output(self) -> list[str]:
        return self.demo.output

    def _read(self) -> None:
        stream = self.demo.process.stdout
        assert stream is not None
        for line in stream:
            self.demo.output.append(line.rstrip("\n"))

    def stop(self) -> str:
        process = self.demo.process
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._reader.join(timeout=10)
        return "\n".join(self.demo.output)
