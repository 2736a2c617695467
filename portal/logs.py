"""What the platform writes to its log: one line per event, never a traceback, and never a
line a client can forge.

A traceback or a driver's message can carry SQL, data or a secret, so the log gets the
exception's type and the place it was raised (`file:line`), or a message's first line.

Values from a request (a path, a header, a name, an email address) can hold a line feed
or other control characters: written as they are, a path with `%0A` would add a second,
made-up line to the log. Every logger of the platform comes from `get_logger`, which
escapes control characters (and backslashes, so an escape cannot be faked either) in
each record's message and arguments before any handler formats it: one request is one
line, whoever configured the handlers (gunicorn, pytest, an operator's logging config).
"""

from __future__ import annotations

import json
import logging
import logging.config
import os
import re
import secrets
import sys
import time

# C0 and C1 controls, DEL, the Unicode line and paragraph separators, the bidirectional
# overrides (which make a line read differently from what it holds), surrogates (which
# no stream can encode) and the backslash itself.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff\\\\]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}


def _escape_char(match: re.Match) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_for_log(value) -> str:
    """`value` as text that stays on one line and shows every control character
    (`"a\\nb"` → `a\\\\nb`, i.e. a backslash and an `n`)."""
    text = value if isinstance(value, str) else str(value)
    return _UNSAFE.sub(_escape_char, text)


def _escape_arg(value):
    if value is None or isinstance(value, (bool, int, float)):
        return value  # keeps %d and %.1f working; numbers cannot hold a line break
    return escape_for_log(value)


_PLAIN = (type(None), bool, int, float)


def _nothing_to_escape(args: tuple) -> bool:
    """Every argument a number, None or text with no character to escape: the usual case,
    told by one scan of the texts together (each unsafe character is unsafe on its own)."""
    texts = []
    for value in args:
        kind = type(value)
        if kind is str:
            texts.append(value)
        elif kind not in _PLAIN:
            return False  # an object: escaped as its text, below
    return _UNSAFE.search("".join(texts)) is None


class EscapeRequestValues(logging.Filter):
    """Escapes a record's message and arguments in place (see the module docstring)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.escaped = True  # the formatters below need not escape it again
        if isinstance(record.msg, str):
            record.msg = escape_for_log(record.msg)
        if isinstance(record.args, dict):
            record.args = {key: _escape_arg(value) for key, value in record.args.items()}
        elif record.args and not _nothing_to_escape(record.args):
            record.args = tuple(_escape_arg(value) for value in record.args)
        return True


_ESCAPE = EscapeRequestValues()


def get_logger(name: str) -> logging.Logger:
    """The logger `name`, escaping request values (use it for every platform logger:
    a logger's filters apply to the records it makes, not to its children's)."""
    logger = logging.getLogger(name)
    if _ESCAPE not in logger.filters:
        logger.addFilter(_ESCAPE)
    return logger


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (or its type when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else exc.__class__.__name__


def where_raised(exc: BaseException) -> str:
    """`TypeName at path/to/file.py:123`: the innermost frame of the exception."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    place = f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}" if tb else "?"
    return f"{exc.__class__.__name__} at {place}"


# -- the format of every line ------------------------------------------------------------
#
# One format for the whole process: gunicorn's own lines, the app's, the database outage
# lines. `serve` installs it (logging_config, given to gunicorn as logconfig_dict); other
# commands get it from console_handler. LOYALTY_LOG_FORMAT=json makes each line one JSON
# object instead (DESIGN.md §14).

LOG_FORMATS = ("text", "json")


_second = (None, "")  # (a unix second, its text): one line after another mostly share it


def _utc_time(record: logging.LogRecord) -> str:
    """ISO 8601 UTC with milliseconds: 2026-12-03T11:04:05.123Z."""
    global _second
    whole = int(record.created)
    second = _second  # one read: another thread may replace it meanwhile, never half of it
    if second[0] != whole:
        second = _second = (whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)))
    return f"{second[1]}.{int(record.msecs):03d}Z"


REQUEST_ID_HEADER = "X-Request-Id"  # on every answer: the portal's, the API's, /healthz's


def request_id() -> str:
    """This request's id (`req_` + 24 hex digits), made on first use and kept on `g`: the
    X-Request-Id of its response (portal.api.errors) and the request_id of its log lines."""
    from flask import g  # here, not at the top: the domain's loggers load no Flask

    rid = g.get("request_id")
    if rid is None:
        rid = g.request_id = new_request_id()
    return rid


def new_request_id() -> str:
    """A fresh request id. 8 hex digits of unix time, then 16 random: ids made close
    together sort together, so the request log's index on them grows at its end
    (portal.domain.request_log)."""
    return f"req_{int(time.time()) & 0xFFFFFFFF:08x}{secrets.token_hex(8)}"


def _request_id() -> str | None:
    """The id of the request being served, or None outside a request."""
    from flask import has_request_context

    return request_id() if has_request_context() else None


class LineFormatter(logging.Formatter):
    """`2026-12-03T11:04:05.123Z INFO portal.api: message`: time, level, logger, message."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if not getattr(record, "escaped", False):  # another library's line (gunicorn's)
            message = escape_for_log(message)
        line = f"{_utc_time(record)} {record.levelname} {record.name}: {message}"
        if record.exc_info:  # a library that logged a traceback: its type and place only
            line += f" ({where_raised(record.exc_info[1])})"
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id (while serving a
    request), and the fields a line carries (`extra={"fields": {...}}`, or a function
    returning them; /v1 requests: the request log's fields)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": _utc_time(record), "level": record.levelname, "logger": record.name,
                 "message": record.getMessage()}
        rid = _request_id()
        if rid:
            entry["request_id"] = rid
        fields = getattr(record, "fields", None)
        if callable(fields):  # made only when a JSON line is written (the API's, per request)
            fields = fields()
        if isinstance(fields, dict):
            for name, value in fields.items():
                entry.setdefault(name, value)
        if record.exc_info:
            entry["exception"] = where_raised(record.exc_info[1])
        # ensure_ascii: a line feed or any control character is an escape, never a new line.
        return json.dumps(entry, ensure_ascii=True, default=str)


def log_format(value: str | None = None) -> str:
    """LOYALTY_LOG_FORMAT (or `value`), checked: "text" (the default) or "json"."""
    from portal.config import ConfigError

    chosen = (value if value is not None else os.environ.get("LOYALTY_LOG_FORMAT", "")).strip().lower() or "text"
    if chosen not in LOG_FORMATS:
        raise ConfigError("LOYALTY_LOG_FORMAT must be 'text' (the default) or 'json'")
    return chosen


def formatter(fmt: str | None = None) -> logging.Formatter:
    return JsonFormatter() if log_format(fmt) == "json" else LineFormatter()


def console_handler(fmt: str | None = None) -> logging.Handler:
    """A stderr handler in the platform's format, for a logger nobody configured."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(fmt))
    return handler


def logging_config(fmt: str | None = None) -> dict:
    """The dictConfig of a server process: every logger (the root, gunicorn's error and
    access logs, the platform's) writes to stderr in one format."""
    fmt = log_format(fmt)
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"platform": {"()": JsonFormatter if fmt == "json" else LineFormatter}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "platform",
                                "stream": "ext://sys.stderr"}},
        "root": {"level": "INFO", "handlers": ["stderr"]},
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": [], "propagate": True},
            # The app writes its own line per request (with request id, key and client);
            # gunicorn's access line would repeat it.
            "gunicorn.access": {"level": "WARNING", "handlers": [], "propagate": False},
            "portal": {"level": "INFO", "handlers": [], "propagate": True},
        },
    }


def configure(fmt: str | None = None) -> None:
    """Install `logging_config` in this process (serve does, before anything logs).

    The platform's formats show neither the caller's place nor thread or process names,
    so no record computes them (the logging HOWTO's "Optimization": one line per API call
    spent a frame walk and three lookups on them)."""
    logging.config.dictConfig(logging_config(fmt))
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
