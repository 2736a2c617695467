"""Finding API keys where they should not be: ``loyalty-sdk scan PATH…`` (DESIGN.md §13).

A finding is a string shaped like an API key (``test_sk_`` or ``prod_sk_`` + 38 characters)
whose checksum is valid, so random look-alikes and documentation placeholders are not
reported. Folders are walked (``.git`` and other version-control folders skipped, symbolic
links to folders not followed); files holding a NUL byte in their first 8 KiB are taken
as binary and skipped.

``report_exposed`` sends findings to the platform's ``POST /v1/keys/revoke-exposed``,
which revokes each live key at once; it needs no credentials.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import requests

from loyalty_sdk._version import __version__
from loyalty_sdk.signing import CHECKSUM_LENGTH, KEY_BODY_LENGTH, KEY_PREFIXES, check_api_key, mask_key

KEY_PATTERN = re.compile(r"(?<![A-Za-z0-9_])(?:%s)[A-Za-z0-9]{%d}(?![A-Za-z0-9])"
                         % ("|".join(map(re.escape, KEY_PREFIXES)), KEY_BODY_LENGTH + CHECKSUM_LENGTH))
SKIPPED_FOLDERS = frozenset({".git", ".hg", ".svn"})
BINARY_SNIFF = 8192
REPORT_BATCH = 100  # keys per request, the endpoint's limit
SOURCE_MAX = 500


@dataclass(frozen=True)
class Finding:
    """One key found: where, and the key itself (print only ``masked``)."""

    path: str
    line: int
    key: str
    mode: str  # "test" or "prod", as check_api_key read it

    @property
    def masked(self) -> str:
        """``test_sk_abcd…wxyz``, as the portal shows keys."""
        return mask_key(self.key)


def _files(paths: Iterable[str]) -> Iterator[Path]:
    for name in paths:
        path = Path(name)
        if path.is_dir():
            for folder, subfolders, files in os.walk(path):
                subfolders[:] = sorted(d for d in subfolders if d not in SKIPPED_FOLDERS)
                for file in sorted(files):
                    candidate = Path(folder) / file
                    if candidate.is_file():
                        yield candidate
        elif path.is_file():
            yield path
        else:
            raise FileNotFoundError(name)


def _is_binary(path: Path) -> bool:
    with path.open("rb") as handle:
        return b"\0" in handle.read(BINARY_SNIFF)


def scan_file(path: Path) -> Iterator[Finding]:
    """The keys with a valid checksum in one text file, line by line."""
    try:
        if _is_binary(path):
            return
        with path.open("r", encoding="utf-8", errors="replace") as handle:
            for number, line in enumerate(handle, 1):
                if "_sk_" not in line:
                    continue
                for match in KEY_PATTERN.finditer(line):
                    try:
                        mode = check_api_key(match.group(0))
                    except ValueError:
                        continue
                    yield Finding(str(path), number, match.group(0), mode)
    except (OSError, UnicodeError):
        return  # unreadable: nothing to say about it here


def scan(paths: Iterable[str]) -> Iterator[Finding]:
    """Every finding in `paths` (files, or folders walked recursively), in order.
    Raises FileNotFoundError for a path that does not exist."""
    for path in _files(paths):
        yield from scan_file(path)


def report_exposed(base_url: str, findings: list[Finding], *, source: str | None = None,
                   timeout: float = 10.0) -> int:
    """POST the findings' keys to ``<base_url>/v1/keys/revoke-exposed`` (100 per request);
    returns how many keys the server acknowledged. Raises ``requests.RequestException`` or
    ``RuntimeError`` (an answer other than 202)."""
    keys = list(dict.fromkeys(f.key for f in findings))
    if source is None:
        places = ", ".join(f"{f.path}:{f.line}" for f in findings)
        source = f"loyalty-sdk scan: {places}"
    source = source[:SOURCE_MAX]
    received = 0
    for start in range(0, len(keys), REPORT_BATCH):
        response = requests.post(f"{base_url.rstrip('/')}/v1/keys/revoke-exposed",
                                 json={"keys": keys[start:start + REPORT_BATCH], "source": source},
                                 headers={"User-Agent": f"loyalty-sdk/{__version__} scan"},
                                 timeout=timeout, allow_redirects=False)
        if response.status_code != 202:
            raise RuntimeError(f"{base_url} answered HTTP {response.status_code} to revoke-exposed: "
                               f"{response.text[:200]}")
        received += int(response.json().get("received", 0))
    return received
