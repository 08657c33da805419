"""Bandit over app/: no finding of medium or higher severity.

A false positive is silenced where it stands, with `# nosec <ID> - reason`, so a reader sees why.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def bandit(target: Path) -> dict[str, Any]:
    """Bandit's JSON report for `target`, medium severity and up (-ll)."""
    run = subprocess.run(
        [sys.executable, "-m", "bandit", "-r", str(target), "-ll", "-q", "-f", "json"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    # Exit 1 means "found something"; anything else non-zero is bandit failing to run.
    assert run.returncode in (0, 1), run.stderr
    report: dict[str, Any] = json.loads(run.stdout)
    return report


@pytest.mark.slow  # a scan
def test_bandit_finds_nothing_of_medium_or_higher_severity_in_app() -> None:
    report = bandit(ROOT / "app")
    assert report["errors"] == []
    scanned = [name for name in report["metrics"] if name.endswith(".py")]
    assert len(scanned) > 40  # the whole package was read, not an empty folder
    findings = [
        f"{r['filename']}:{r['line_number']} {r['test_id']} ({r['issue_severity']}) "
        f"{r['issue_text']}"
        for r in report["results"]
    ]
    assert findings == []


def test_the_scan_does_report_a_medium_finding(tmp_path: Path) -> None:
    # The same command on code with a known hole: the test above would see a real finding.
    (tmp_path / "bad.py").write_text(
        "import subprocess\n\n\ndef run(cmd):\n    return subprocess.call(cmd, shell=True)\n"
    )
    report = bandit(tmp_path)
    assert [r["test_id"] for r in report["results"]] == ["B602"]
