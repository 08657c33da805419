"""Start-up migrations: a database already at the newest migration is served without Alembic.

`serve` migrates at start; Alembic (with Mako) is ~7 MiB of the server's memory, so the check
that nothing is pending reads the version table with SQLAlchemy and compares it to
app.store.db.HEAD_REVISION, which must stay Alembic's head.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from app.store.db import HEAD_REVISION, Database
from tests.helpers import clean_env

ROOT = Path(__file__).resolve().parents[2]

MIGRATE_AND_REPORT = """
import sys
from app.store.db import Database
db = Database(sys.argv[1])
db.migrate()
print(db.revision(), "alembic" in sys.modules)
"""


def _migrate_in_a_new_process(url: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", MIGRATE_AND_REPORT, url],
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_head_revision_is_alembics_head(tmp_path: Path):
    config = Database(f"sqlite:///{tmp_path}/any.db").alembic_config()
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head == HEAD_REVISION, f"a new migration: set HEAD_REVISION in app/store/db.py to {head}"


def test_a_new_database_is_migrated_and_a_current_one_starts_without_alembic(tmp_path: Path):
    url = f"sqlite:///{tmp_path}/portal.db"
    # A new database: Alembic creates every table.
    assert _migrate_in_a_new_process(url) == [HEAD_REVISION, "True"]
    db = Database(url)
    assert "invitations" in inspect(db.engine).get_table_names()
    assert not db.pending_migrations()
    db.engine.dispose()
    # The next start finds it current and never loads Alembic.
    assert _migrate_in_a_new_process(url) == [HEAD_REVISION, "False"]
