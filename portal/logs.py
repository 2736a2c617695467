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

import logging
import re

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


class EscapeRequestValues(logging.Filter):
    """Escapes a record's message and arguments in place (see the module docstring)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = escape_for_log(record.msg)
        if isinstance(record.args, dict):
            record.args = {key: _escape_arg(value) for key, value in record.args.items()}
        elif record.args:
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
