"""Every `iam-onboard …` command in docs/deploy.md is one the CLI accepts.

Each command is taken from the page (code blocks, inline code, and the JSON command overrides
of `aws ecs run-task`), its subcommand's `--help` is run through the real CLI, and the whole
line is parsed by the CLI's own parser, which rejects an unknown option or a missing argument.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from functools import cache
from pathlib import Path

import pytest

from app.cli import build_parser
from tests.helpers import CLI, clean_env

DOC = Path(__file__).resolve().parents[2] / "docs" / "deploy.md"

# Subcommands the page documents that another branch adds. When one lands, this test fails on
# it ("… is no longer pending"): take it out of this set.
PENDING_SUBCOMMANDS: set[str] = set()

_LINE = re.compile(r"^(?:\S*/bin/)?iam-onboard (?P<args>.+)$")
_INLINE = re.compile(r"`iam-onboard (?P<args>[^`]+)`")
_JSON_COMMAND = re.compile(r'\["iam-onboard"(?:,\s*"[^"]*")*\]')


def documented_commands(text: str) -> list[list[str]]:
    """The argument lists (after `iam-onboard`) of every command the page shows."""
    commands: list[list[str]] = []
    in_block = False
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("```"):
            in_block = not in_block
            continue
        if in_block:
            line = line.removeprefix("ExecStart=")  # systemd: ExecStart=/…/bin/iam-onboard …
            match = _LINE.match(line)
            if match:
                commands.append(shlex.split(match["args"]))
        else:
            commands += [shlex.split(m["args"]) for m in _INLINE.finditer(line)]
        commands += [json.loads(m.group(0))[1:] for m in _JSON_COMMAND.finditer(line)]
    # "`iam-onboard …`" stands for any command; it is not one.
    unique = {tuple(c): c for c in commands if c and c[0] != "…"}
    return list(unique.values())


COMMANDS = documented_commands(DOC.read_text(encoding="utf-8"))


def test_the_page_shows_the_steps_of_a_deployment():
    subcommands = {c[0] for c in COMMANDS}
    assert {"bootstrap", "create-admin", "serve", "policy"} <= subcommands
    assert ["bootstrap", "--dry-run"] in COMMANDS


def test_the_extractor_finds_each_form_and_skips_prose():
    text = (
        "Run `iam-onboard status --cached` or `iam-onboard …`.\n"
        "```ini\nDescription=iam-onboard portal\n"
        "ExecStart=/opt/x/venv/bin/iam-onboard serve --port 8000\n```\n"
        "```sh\nsudo useradd --home-dir /opt/iam-onboard --shell /bin/false x\n"
        'aws ecs run-task --overrides \'{"command": ["iam-onboard", "bootstrap"]}\'\n```\n'
    )
    assert documented_commands(text) == [
        ["status", "--cached"],
        ["serve", "--port", "8000"],
        ["bootstrap"],
    ]


@cache
def _help_of(command: str) -> subprocess.CompletedProcess[str]:
    """`iam-onboard COMMAND --help`, run once per command (the docs name `serve` three times,
    `policy` five): each start of the CLI costs a second of imports."""
    return subprocess.run(
        [*CLI, command, "--help"], env=clean_env(), capture_output=True, text=True, timeout=60
    )


@pytest.mark.slow  # starts iam-onboard processes
@pytest.mark.parametrize("args", COMMANDS, ids=[" ".join(c) for c in COMMANDS])
def test_each_documented_command_is_one_the_cli_accepts(args: list[str]):
    parser = build_parser()
    if args[0] in PENDING_SUBCOMMANDS:
        help_run = _help_of(args[0])
        assert help_run.returncode != 0, f"`{args[0]}` is no longer pending: clear it"
        assert "invalid choice" in help_run.stderr
        return
    help_run = _help_of(args[0])
    assert help_run.returncode == 0, help_run.stderr
    for word in args[1:]:
        if word.startswith("--"):
            assert word.split("=", 1)[0] in help_run.stdout, f"{word} is not an option of {args[0]}"
    # The parser checks the whole line: arguments, option values, nothing unknown.
    parsed = parser.parse_args(args)
    assert parsed.command == args[0]
