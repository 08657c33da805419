"""Logging for the CLI and the servers: readable text by default, or one JSON object a line.

IAM_ONBOARD_LOG_FORMAT=json is for log shippers: each line holds time, level, logger, message
and, on the request lines of app.main, request_id, method, route, status, duration_ms,
aws_calls, aws_ms and actor. Both formats write the same records: what keeps secrets out of
logs (tokens taken out of paths, chatty libraries pinned) applies to both.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

# Fields a request line carries (`extra=` of app.main's request log) beside the message.
REQUEST_FIELDS = (
    "request_id",
    "method",
    "route",
    "status",
    "duration_ms",
    "aws_calls",
    "aws_ms",
    "actor",
)


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines inside values are escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in REQUEST_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def setup_logging(level: str, fmt: str = "text") -> None:
    """The root logger's one handler (stderr), in `fmt`; noisy libraries kept at WARNING."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    # Without force: a process whose root logger has handlers already (a test's) keeps them.
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), handlers=[handler])
    # moto's werkzeug server and botocore would otherwise log every request they see, and
    # Alembic each plugin it sets up and each migration it runs.
    for noisy in ("werkzeug", "botocore", "urllib3", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
