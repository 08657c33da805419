"""`iam-onboard serve --workers 2` as an operator starts it: a real process tree on loopback.

Requests spread over the two workers (each its own process); whichever worker answers a
scrape, /metrics shows the sum of both. Housekeeping runs in the parent only, not once per
worker. Ctrl-C stops the workers and removes the metrics directory.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.sandbox import Sandbox
from tests.helpers import CLI, clean_env, free_port

TOKEN = "metrics-scraper-token-0123456789"
pytestmark = pytest.mark.slow  # starts iam-onboard processes


def children(pid: int) -> list[int]:
    found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(p) for p in found]


def environ_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def samples(base: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    # A new connection each time: the kernel hands it to either worker.
    r = httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200, r.text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def test_serve_with_two_workers_answers_and_metrics_sum_across_them(
    aws: Sandbox, tmp_path: Path
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = clean_env(
        IAM_ONBOARD_SECRET_KEY="a-real-secret-for-this-test-0123456789abcdef",
        IAM_ONBOARD_DATABASE_URL=f"sqlite:///{tmp_path}/portal.db",
        IAM_ONBOARD_BASE_URL=base,
        IAM_ONBOARD_METRICS_TOKEN=TOKEN,
        IAM_ONBOARD_HOUSEKEEPING_INTERVAL_SECONDS="0.5",
        IAM_ONBOARD_LOG_FORMAT="json",
        AWS_ENDPOINT_URL_IAM=aws.url,
    )
    started = time.monotonic()
    process = subprocess.Popen(
        [*CLI, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        up = False
        while not up and time.monotonic() < deadline and process.poll() is None:
            try:
                up = httpx.get(f"{base}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                time.sleep(0.2)
        assert up, "serve --workers 2 did not answer"
        # uvicorn's workers are spawned processes (beside them: multiprocessing's tracker).
        workers = [
            pid
            for pid in children(process.pid)
            if "spawn_main" in Path(f"/proc/{pid}/cmdline").read_text(errors="replace")
        ]
        assert len(workers) == 2, workers
        metrics_dir = Path(environ_of(workers[0])["PROMETHEUS_MULTIPROC_DIR"])
        assert metrics_dir.is_dir()

        before = samples(base)
        labels = {"action": "GetCallerIdentity", "error_code": ""}
        key = ("iam_onboard_iam_calls_total", frozenset(labels.items()))

        def ready(_: int) -> int:
            with httpx.Client() as c:  # its own connection
                return c.get(f"{base}/readyz").status_code

        with ThreadPoolExecutor(8) as pool:  # one GetCallerIdentity each, side by side
            assert set(pool.map(ready, range(24))) == {200}
        # Both workers counted some: each process writes its own file.
        writers = {
            int(m.group(1))
            for f in metrics_dir.iterdir()
            if (m := re.fullmatch(r"counter_(\d+)\.db", f.name))
        }
        assert len(writers & set(workers)) == 2, (writers, workers)
        # Whichever worker answers, the sum of both.
        for _ in range(6):
            assert samples(base).get(key, 0) - before.get(key, 0) == 24

        # Housekeeping: the parent's thread only (every 0.5 s, its first run 0.5 s in).
        runs = sum(
            v
            for (name, _labels), v in samples(base).items()
            if name == "iam_onboard_housekeeping_runs_total"
        )
        elapsed = time.monotonic() - started
        assert 1 <= runs <= elapsed / 0.5 + 1, (runs, elapsed)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            out, _ = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            out, _ = process.communicate()
    assert process.returncode == 0, out
    # IAM_ONBOARD_LOG_FORMAT=json: the parent's and the workers' lines alike.
    lines = [line for line in out.splitlines() if line.strip()]
    assert lines and all(json.loads(line)["level"] for line in lines), out
    assert not metrics_dir.exists()  # a next start begins from zero
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)  # the parent joined them
