"""Browser fixtures: Debian's Chromium driven by Playwright, and axe-core from the npm registry."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import NO_SKIPS, skip_or_fail
from tests.helpers import Demo, start_demo

CHROMIUM = os.environ.get("IAM_ONBOARD_CHROMIUM", "/usr/bin/chromium")
AXE_VERSION = "4.10.3"
AXE_DIR = Path(__file__).resolve().parents[2] / ".cache" / "axe"
# Without these Chromium keeps dialling Google's hosts, which this network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


_not_run: list[int] = []


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without Chromium, locally, the browser tests are left out with one line saying why."""
    if NO_SKIPS or Path(CHROMIUM).exists():
        return  # in CI the chromium fixture fails each of them instead
    here = Path(__file__).resolve().parent
    left_out = [item for item in items if here in Path(item.path).resolve().parents]
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = [item for item in items if item not in left_out]
        _not_run.append(len(left_out))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _not_run:
        terminalreporter.write_line(
            f"{sum(_not_run)} browser tests not run: Chromium not found at {CHROMIUM} "
            "(apt-get install chromium)",
            yellow=True,
        )


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        skip_or_fail(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def demo(
    chromium: Any, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Demo]:
    """`iam-onboard demo` for one test module (Chromium started first: a missing browser fails
    before a demo is started for nothing)."""
    d = start_demo(tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1]))
    yield d
    d.stop()


@pytest.fixture(scope="session")
def axe_source() -> str:
    """axe.min.js, installed from the npm registry on first use into .cache/axe."""
    script = AXE_DIR / "node_modules" / "axe-core" / "axe.min.js"
    if script.exists():
        return script.read_text(encoding="utf-8")
    npm = shutil.which("npm")
    if not npm:
        skip_or_fail("npm not found: it installs axe-core for the accessibility checks")
    AXE_DIR.mkdir(parents=True, exist_ok=True)
    # pytest-xdist workers share .cache/axe: one installs while the others wait on the lock,
    # then find the script there (two npm installs into one prefix would corrupt it).
    with (AXE_DIR / ".install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not script.exists():
            subprocess.run(
                [npm, "install", "--no-audit", "--no-fund", "--prefix", str(AXE_DIR),
                 f"axe-core@{AXE_VERSION}"],
                check=True,
                capture_output=True,
                timeout=300,
            )  # fmt: skip
    return script.read_text(encoding="utf-8")


def axe_violations(page: Any, axe_source: str) -> list[dict[str, Any]]:
    """Run axe-core on the page (WCAG 2.1 A/AA rules) and return its violations."""
    # Evaluated rather than added as a <script> tag: the portal's CSP forbids inline scripts.
    # A context given context.add_init_script(axe_source) has it on every page already (faster).
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(axe_source)
    result = page.evaluate(
        """async () => {
            const r = await axe.run(document, {runOnly: {type: 'tag',
                values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']}});
            return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}));
        }"""
    )
    return list(json.loads(json.dumps(result)))
