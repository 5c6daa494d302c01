"""Structured logs: one JSON object per line (time, level, logger, message, request_id, fields), secrets removed.

`charter serve` logs this way (CHARTER_LOG_FORMAT=text for plain lines, CHARTER_LOG_LEVEL for the level,
`warning` by default; at `info` every request also gets an access line: method, path without its query,
status, milliseconds). The request id is the caller's `X-Request-Id` (when it is short and plain) or one made
up by the server, echoed in the response and carried by every line logged while the request is served.

No secret is written: `redact` removes bearer credentials, Charter API credentials (`chr_...`), JWTs,
`password=` / `secret=` / `token=` / `code=` style pairs, cookies and SQL statement parameters from the
message and the traceback; a field whose name says it holds a secret is replaced by "[redacted]".
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
from typing import Any

import orjson

from charter.audit.trail import REQUEST_ID

REDACTED = "[redacted]"
# A record's own attributes (and uvicorn's coloured copy of its message): what is left are the caller's fields.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}
_STANDARD.add("color_message")
_SECRET_NAME = re.compile(r"pass(word)?|secret|token|authorization|cookie|credential|^code$|api[_-]?key", re.I)
_PATTERNS = [
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"), r"\1 " + REDACTED),
    (re.compile(r"\bchr_[A-Za-z0-9_-]+"), "chr_" + REDACTED),
    (re.compile(r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), REDACTED),  # a JWT
    (
        re.compile(
            r"(?i)\b((?:client_)?secret|password|passwd|(?:access_|refresh_|id_)?token|code(?:_verifier)?|"
            r"cookie|set-cookie|authorization)(\"?\s*[=:]\s*\"?)([^\s&\",;]+)"
        ),
        r"\1\2" + REDACTED,
    ),
    (  # a header as a (name, value) pair, as HTTP libraries log them
        re.compile(r"(?i)(b?['\"](?:set-cookie|cookie|authorization|proxy-authorization)['\"],\s*b?['\"])[^'\"]*"),
        r"\1" + REDACTED,
    ),
    (re.compile(r"\[parameters: [^\n]*"), "[parameters: " + REDACTED + "]"),  # SQLAlchemy's statement parameters
]


def redact(text: str) -> str:
    """`text` with every credential-looking part replaced by "[redacted]"."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _field(name: str, value: Any) -> Any:
    if _SECRET_NAME.search(name):
        return REDACTED
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, int | float | bool) or value is None:
        return value
    return redact(str(value))


class JsonFormatter(logging.Formatter):
    """A record as one line of JSON: time (UTC, ISO 8601), level, logger, message, request_id, fields[, exception]."""

    def format(self, record: logging.LogRecord) -> str:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not lose the line
            message = str(record.msg)
        entry: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(message),
            "request_id": REQUEST_ID.get(),
        }
        fields = {k: _field(k, v) for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}
        if fields:
            entry["fields"] = fields
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return orjson.dumps(entry).decode()


class RedactingFormatter(logging.Formatter):
    """Plain text lines (CHARTER_LOG_FORMAT=text), secrets removed all the same."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def level_from_env() -> str:
    level = os.environ.get("CHARTER_LOG_LEVEL", "warning").strip().upper() or "WARNING"
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise SystemExit(f"CHARTER_LOG_LEVEL must be debug, info, warning, error or critical, found {level.lower()!r}")
    return level


def uvicorn_config() -> dict:
    """A `logging.config.dictConfig` for `charter serve` (uvicorn's `log_config`): everything, uvicorn's own
    lines included, through one formatter on stderr."""
    json_lines = os.environ.get("CHARTER_LOG_FORMAT", "json").strip().lower() != "text"
    formatter = (
        {"()": "charter.logs.JsonFormatter"}
        if json_lines
        else {"()": "charter.logs.RedactingFormatter", "format": "%(asctime)s %(levelname)s %(name)s %(message)s"}
    )
    level = level_from_env()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"charter": formatter},
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": "charter", "stream": "ext://sys.stderr"}
        },
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {
            "uvicorn": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.error": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},  # ours has no query string
        },
    }
