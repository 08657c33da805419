"""Run the Dockerfile's steps in a fresh venv, since CI has no Docker engine.

The build context is the repository less what .dockerignore leaves out; WORKDIR becomes a
folder under a temporary root; COPY copies from the context; each `pip ...` of a RUN runs with
the venv's pip; the image's system-user steps (groupadd, useradd, mkdir, chown) are skipped; any
other instruction or command fails, so the Dockerfile cannot grow a step this script ignores.
Last, the image's command (`iam-onboard ...`) must answer `--help` from the copy, not from the
repository, with the image's ENV.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
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
        if not where.startswith(str(workdir)):
            raise SystemExit(f"the venv imports app from {where}, not from the image's copy")
        for args in (["--help"], [*command[1:2], "--help"]):
            out = subprocess.run(
                [program, *args], cwd="/", env=env, capture_output=True, text=True, check=True
            )
            print(f"{' '.join([command[0], *args])}: ok ({len(out.stdout.splitlines())} lines)")
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
