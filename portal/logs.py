"""What the platform writes to its log about failures: one line each, never a traceback.

A traceback or a driver's message can carry SQL, data or a secret, so the log gets the
exception's type and the place it was raised (`file:line`), or a message's first line.
"""

from __future__ import annotations


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
