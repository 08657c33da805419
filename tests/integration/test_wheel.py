"""The built wheel, installed without the `demo` extra, serves the portal by itself.

What production installs (the Dockerfile, docs/deploy.md): `requirements.lock` and the package,
not editable. So the wheel must carry its templates, static files, translations and migrations,
must not bring the sandbox (moto, Flask), and `iam-onboard serve` from it must answer the
enrollment and admin pages with their stylesheet. The sandbox it talks to runs from the
development environment, as AWS would run elsewhere.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import venv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from app.sandbox import Sandbox
from tests.conftest import TEST_SECRET
from tests.faults.server import Server, wait_until_up
from tests.helpers import clean_env, free_port

ROOT = Path(__file__).resolve().parents[2]
KOREAN = {"Accept-Language": "ko-KR,ko;q=0.9"}
STYLESHEET = re.compile(r'<link rel="stylesheet" href="([^"]+)"')

pytestmark = pytest.mark.slow


def _run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=env or clean_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"{args}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@dataclass
class Install:
    bin: Path
    home: Path  # a folder outside the repository: nothing there to import `app` from


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Install:
    """The wheel built from this tree, in a fresh venv beside requirements.lock only."""
    tmp = tmp_path_factory.mktemp("wheel")
    # Built from a copy, so that the build leaves nothing (build/, *.egg-info) in the repository.
    source = tmp / "source"
    shutil.copytree(
        ROOT / "app", source / "app", ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    _run(*pip, "wheel", "--quiet", "--no-deps", "--wheel-dir", tmp / "dist", source, cwd=tmp)
    (wheel,) = (tmp / "dist").glob("iam_onboard-*.whl")

    venv.create(tmp / "venv", with_pip=True)
    bin_dir = tmp / "venv" / "bin"
    pip = [bin_dir / "pip", "--disable-pip-version-check"]
    _run(*pip, "install", "--quiet", "-r", ROOT / "requirements.lock", cwd=tmp)
    _run(*pip, "install", "--quiet", "--no-deps", wheel, cwd=tmp)
    home = tmp / "home"
    home.mkdir()
    return Install(bin_dir, home)


def test_the_wheel_installs_without_the_sandbox(installed: Install):
    listed = _run(installed.bin / "pip", "list", "--format=json", cwd=installed.home)
    names = {package["name"].lower() for package in json.loads(listed)}
    assert "iam-onboard" in names
    assert not names & {"moto", "flask", "flask-cors", "werkzeug", "cfn-lint", "docker"}
    # requirements.lock alone satisfies everything the wheel declares.
    _run(installed.bin / "pip", "check", cwd=installed.home)
    where = _run(
        installed.bin / "python", "-c", "import app; print(app.__file__)", cwd=installed.home
    )
    assert "site-packages" in where and where.startswith(str(installed.bin.parent))


def test_demo_from_the_wheel_says_to_install_the_demo_extra(installed: Install):
    result = subprocess.run(
        [installed.bin / "iam-onboard", "demo"],
        cwd=installed.home,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "pip install 'iam-onboard[demo]'" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.fixture
def served(installed: Install, sandbox: Sandbox, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """`iam-onboard serve` from the wheel, and an invitation's enrollment path made by its CLI."""
    sandbox.reset()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = clean_env(
        IAM_ONBOARD_SECRET_KEY=TEST_SECRET,
        IAM_ONBOARD_DATABASE_URL=f"sqlite:///{tmp_path}/portal.db",
        IAM_ONBOARD_BASE_URL=url,
        IAM_ONBOARD_HOUSEKEEPING_INTERVAL_SECONDS="0",
        AWS_ENDPOINT_URL_IAM=sandbox.url,
    )
    env.pop("PYTHONPATH", None)
    cli = installed.bin / "iam-onboard"
    _run(cli, "bootstrap", cwd=installed.home, env=env)
    link = _run(
        cli, "invite", "alice", "--email", "alice@example.com", cwd=installed.home, env=env
    ).splitlines()[-1]
    assert link.startswith(f"{url}/enroll/")

    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [cli, "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=installed.home,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Server(process, url, log)
    try:
        wait_until_up(server)
        yield url, link.removeprefix(url)
    finally:
        server.stop()
    assert "Traceback" not in log.read_text(), log.read_text()


def _stylesheet_of(client: httpx.Client, page: httpx.Response) -> None:
    (href,) = STYLESHEET.findall(page.text)
    css = client.get(href)
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    assert css.text == (ROOT / "app" / "static" / "app.css").read_text(encoding="utf-8")


def test_serve_from_the_wheel_answers_the_enroll_and_admin_pages(served: tuple[str, str]):
    url, enroll_path = served
    with httpx.Client(base_url=url, timeout=10) as client:
        landing = client.get(enroll_path)
        assert landing.status_code == 200, landing.text
        assert "alice" in landing.text
        _stylesheet_of(client, landing)

        sign_in = client.get("/admin/sign-in")
        assert sign_in.status_code == 200, sign_in.text
        assert 'name="password"' in sign_in.text
        _stylesheet_of(client, sign_in)

        # The translations ship too: a Korean browser reads the page in Korean.
        korean = client.get("/admin/sign-in", headers=KOREAN)
        assert korean.status_code == 200
        assert re.search(r"[\uac00-\ud7a3]", korean.text)
        assert client.get("/static/app.js").status_code == 200
