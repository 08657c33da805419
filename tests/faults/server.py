"""The real `iam-onboard serve` in a subprocess on 127.0.0.1, for crash, load and replica tests."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import TEST_SECRET
from tests.helpers import CLI, clean_env, free_port


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: no shutdown handler, no finally block, no flush runs."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


def server_env(*, database_url: str, iam_url: str, base_url: str, **extra: str) -> dict[str, str]:
    """What `iam-onboard serve` and every other command need to act on the same portal."""
    return clean_env(
        IAM_ONBOARD_SECRET_KEY=TEST_SECRET,
        IAM_ONBOARD_DATABASE_URL=database_url,
        IAM_ONBOARD_BASE_URL=base_url,
        IAM_ONBOARD_HOUSEKEEPING_INTERVAL_SECONDS="0",
        AWS_ENDPOINT_URL_IAM=iam_url,
        LANG="C.UTF-8",  # the texts the tests read are the English ones
        **extra,
    )


def launch_server(
    *,
    database_url: str,
    iam_url: str,
    log: Path,
    port: int | None = None,
    base_url: str | None = None,
    **extra_env: str,
) -> Server:
    """Start `iam-onboard serve` on 127.0.0.1 without waiting for it (see wait_until_up)."""
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    env = server_env(
        database_url=database_url, iam_url=iam_url, base_url=base_url or url, **extra_env
    )
    with log.open("ab") as out:  # a file, not a pipe: a full pipe would stall the server
        process = subprocess.Popen(
            [*CLI, "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return Server(process, url, log)


def wait_until_up(server: Server, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            code = server.process.returncode
            raise AssertionError(f"the server exited ({code}):\n{server.output()}")
        try:
            if httpx.get(server.url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    server.stop()
    raise AssertionError("the server did not come up:\n" + server.output())


def start_server(**kwargs: Any) -> Server:
    server = launch_server(**kwargs)
    wait_until_up(server)
    return server


@contextmanager
def running_server(**kwargs: Any) -> Iterator[Server]:
    """One server, stopped at the end whatever happens."""
    with running_servers(1, **kwargs) as servers:
        yield servers[0]


@contextmanager
def running_servers(count: int, *, log: Path, **kwargs: Any) -> Iterator[list[Server]]:
    """`count` servers on the same settings, started side by side; all stopped at the end."""
    servers: list[Server] = []
    try:
        for index in range(count):
            name = log if count == 1 else log.with_name(f"{log.stem}-{index}{log.suffix}")
            servers.append(launch_server(log=name, **kwargs))
        for server in servers:
            wait_until_up(server)
        yield servers
    finally:
        for server in servers:
            server.stop()
