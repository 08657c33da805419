"""Run the Dockerfile's steps in a fresh venv, since CI has no Docker engine.

The build context is the repository less what .dockerignore leaves out; WORKDIR becomes a
folder under a temporary root; COPY copies from the context; each `pip ...` of a RUN runs with
the venv's pip; the image's system-user steps (groupadd, useradd, mkdir, chown) are skipped; any
other instruction or command fails, so the Dockerfile cannot grow a step this script ignores.
Last, the image's command (`iam-onboard ...`) must answer `--help` from the installed package
(not from the copy or the repository) with the image's ENV; and when run as root (CI),
`iam-onboard serve` runs as the unprivileged user `nobody` with one writable folder (a tmp
volume's stand-in, holding TMPDIR and a SQLite file) and answers a page: the image's code writes
nowhere else, so a read-only root filesystem suits it.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SKIPPED_COMMANDS = ("groupadd", "useradd", "mkdir", "chown")
IGNORED_INSTRUCTIONS = ("FROM", "VOLUME", "USER", "EXPOSE", "HEALTHCHECK")


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    result: list[tuple[str, str]] = []
    current = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        keyword, _, rest = current.partition(" ")
        result.append((keyword.upper(), rest.strip()))
        current = ""
    return result


def context_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    patterns = [
        p.strip().rstrip("/")
        for p in (ROOT / ".dockerignore").read_text().splitlines()
        if p.strip() and not p.startswith("#")
    ]

    def ignored(path: str) -> bool:
        parts = path.split("/")
        for pattern in patterns:
            bare = pattern.removeprefix("**/")
            if fnmatch.fnmatch(path, pattern) or any(fnmatch.fnmatch(p, bare) for p in parts):
                return True
        return False

    return [p for p in listed if (ROOT / p).is_file() and not ignored(p)]


def copy(args: str, workdir: Path, files: list[str]) -> None:
    *sources, dest = shlex.split(args)
    target = workdir / dest if not dest.startswith("/") else Path(dest)
    for source in sources:
        for path in files:
            if source == "." or path == source or path.startswith(source.rstrip("/") + "/"):
                rel = path if source == "." else Path(path).name
                out = target / rel if source == "." or dest.endswith("/") else target
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / path, out)


def serve_unprivileged(program: str, tmp: Path, env: dict[str, str]) -> None:
    """`serve` as nobody, with only `writable` writable; it must answer a page and log no error."""
    nobody = 65534
    writable = tmp / "writable"
    writable.mkdir()
    os.chown(writable, nobody, nobody)
    tmp.chmod(0o755)  # readable, not writable, by nobody: like an image's root filesystem
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run_env = {
        **env,
        "HOME": str(tmp / "app"),
        "TMPDIR": str(writable),
        "IAM_ONBOARD_DATABASE_URL": f"sqlite:///{writable}/portal.db",
        "IAM_ONBOARD_SECRET_KEY": "dockerfile-steps-" + "x" * 32,
        "IAM_ONBOARD_HOUSEKEEPING_INTERVAL_SECONDS": "0",
        "AWS_ENDPOINT_URL_IAM": "http://127.0.0.1:9",
    }
    log = writable / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["runuser", "-u", "nobody", "--", program, "serve", "--port", str(port)],
            cwd="/",
            env=run_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise SystemExit("serve as nobody exited:\n" + log.read_text())
            try:
                url = f"http://127.0.0.1:{port}/admin/sign-in"
                with urllib.request.urlopen(url, timeout=2) as page:  # noqa: S310
                    assert page.status == 200
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit(
                        "serve as nobody did not answer:\n" + log.read_text()
                    ) from None
                time.sleep(0.2)
    finally:
        process.terminate()
        process.wait(timeout=15)
    output = log.read_text()
    if "Traceback" in output or "ERROR" in output:
        raise SystemExit("serve as nobody logged an error:\n" + output)
    print("iam-onboard serve as nobody, one writable folder: /admin/sign-in answered 200")


def main() -> int:
    text = (ROOT / "Dockerfile").read_text()
    files = context_files()
    tmp = Path(tempfile.mkdtemp(prefix="dockerfile-steps-"))
    try:
        env_dir = tmp / "venv"
        venv.create(env_dir, with_pip=True)
        env = {**os.environ, "PATH": f"{env_dir / 'bin'}{os.pathsep}{os.environ['PATH']}"}
        env.pop("PYTHONPATH", None)
        workdir = tmp
        command: list[str] = []
        for keyword, args in instructions(text):
            if keyword == "ENV":
                for item in shlex.split(args):
                    key, _, value = item.partition("=")
                    env[key] = value
            elif keyword == "WORKDIR":
                workdir = tmp / args.lstrip("/")
                workdir.mkdir(parents=True, exist_ok=True)
            elif keyword == "COPY":
                copy(args, workdir, files)
            elif keyword == "RUN":
                for step in args.split("&&"):
                    words = shlex.split(step)
                    if words[0] in SKIPPED_COMMANDS:
                        print(f"skipped (system user setup): {step.strip()}")
                    elif words[0] == "pip":
                        print(f"running: {step.strip()}", flush=True)
                        subprocess.run(
                            [str(env_dir / "bin" / "pip"), *words[1:]],
                            cwd=workdir,
                            env=env,
                            check=True,
                        )
                    else:
                        raise SystemExit(
                            f"unknown RUN step, teach tools/dockerfile_steps.py: {step}"
                        )
            elif keyword == "CMD":
                command = json.loads(args)
            elif keyword not in IGNORED_INSTRUCTIONS:
                raise SystemExit(f"unknown instruction, teach tools/dockerfile_steps.py: {keyword}")
        if not command:
            raise SystemExit("the Dockerfile has no CMD")
        program = str(env_dir / "bin" / command[0])
        where = subprocess.run(
            [str(env_dir / "bin" / "python"), "-c", "import app; print(app.__file__)"],
            cwd="/",
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        # A regular install: the code (and its templates and static files) comes from the
        # venv's site-packages, not from the copied source tree nor from the repository.
        if not where.startswith(str(env_dir)) or "site-packages" not in where:
            raise SystemExit(f"the venv imports app from {where}, not from its site-packages")
        for args in (["--help"], [*command[1:2], "--help"]):
            out = subprocess.run(
                [program, *args], cwd="/", env=env, capture_output=True, text=True, check=True
            )
            print(f"{' '.join([command[0], *args])}: ok ({len(out.stdout.splitlines())} lines)")
        if os.geteuid() == 0:
            serve_unprivileged(program, tmp, env)
        else:
            print("not root: the unprivileged serve check runs in CI (as root) only")
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
