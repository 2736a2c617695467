"""Input from outside, read one way everywhere: text the databases can store, and the
numbers people type into forms.

Text: SQLite and PostgreSQL both store any valid Unicode except NUL, which PostgreSQL
refuses in text columns; a lone surrogate (`"\\ud800"` in JSON, an undecodable byte in a
command-line argument) is not valid Unicode and cannot even be encoded for the driver.
The API (portal.api.schema), the portal (portal.web, one request hook) and the command
line (portal.cli) refuse such text with `unstorable()` before anything reaches a database.

Numbers: a form's whole number is ASCII digits only, optionally surrounded by spaces —
no sign, exponent, underscore, other scripts' digits (`int("٣")` is 3), hex or float
spelling — and an amount of money is digits with at most the currency's decimals. Both
are bounded in length before any arithmetic, so no input can be too big to compute with.
"""

from __future__ import annotations

import re

# NUL and the surrogate code points (which valid UTF-8 never produces).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")

MAX_NUMBER_DIGITS = 15  # digits before the decimal point; well inside a 64-bit integer
_WHOLE = re.compile(r"[ \t]*([0-9]{1,%d})[ \t]*" % MAX_NUMBER_DIGITS)
_AMOUNT = re.compile(r"[ \t]*([0-9]{1,%d})(?:[.,]([0-9]{1,%d}))?[ \t]*" % (MAX_NUMBER_DIGITS, MAX_NUMBER_DIGITS))


def unstorable(text: str) -> str | None:
    """What in `text` no database can store ("a NUL character", "an unpaired surrogate
    (U+D800)"), or None when all of it can be stored."""
    match = _UNSTORABLE.search(text)
    if match is None:
        return None
    char = match.group()
    return "a NUL character" if char == "\x00" else f"an unpaired surrogate (U+{ord(char):04X})"


def whole_number(text: str) -> int | None:
    """The whole number a person typed (`"12"`, `" 5 "`, `"007"`), or None for anything
    else: signs, decimals, exponents, `1_000`, `0x10`, non-ASCII digits, over 15 digits."""
    match = _WHOLE.fullmatch(text or "")
    return int(match.group(1)) if match else None


def row_id(value) -> int | None:
    """A database row id from a URL or a form (`5`, `"5"`), or None for anything that
    cannot be one: not a whole number, zero, or too many digits for the database's integer
    (SQLite raises rather than answering "no such row")."""
    number = value if isinstance(value, int) and not isinstance(value, bool) else whole_number(str(value or ""))
    return number if number is not None and 1 <= number < 2**63 else None


class AmountError(ValueError):
    """Why an amount cannot be read: `reason` is "not_a_number" or "too_many_decimals"."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def minor_units(text: str, decimals: int) -> int:
    """An amount typed in major units (`"2.50"` or `"2,50"`) as an integer of minor units
    with `decimals` digits (250). Raises AmountError otherwise, also for more decimals than
    the currency has, zeros included: `"1,000"` in EUR could be a thousand or one, so it is
    refused rather than guessed. Never computes with more than 15 + `decimals` digits."""
    match = _AMOUNT.fullmatch(text or "")
    if match is None:
        raise AmountError("not_a_number")
    whole, fraction = match.group(1), match.group(2) or ""
    if len(fraction) > decimals:
        raise AmountError("too_many_decimals")
    return int(whole) * 10**decimals + int(fraction.ljust(decimals, "0") or "0")
