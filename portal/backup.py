"""`loyalty-portal backup FILE` and `restore FILE` (DESIGN.md §14).

A backup is one tar.gz archive, created readable by its owner only (0600), holding:

- `loyalty.db` — on SQLite, a consistent copy taken while the server runs: SQLite's online
  backup API in one step, which reads one snapshot (in WAL mode writers go on meanwhile)
  and so never restarts under write load. On PostgreSQL there is no database in the
  archive: `pg_dump` is the tool for that, and the command says so;
- `keys/secret_key`, `keys/encryption_key`, `keys/key_pepper` — the data dir's generated
  keys (without `encryption_key` the stored App Secrets cannot be read, without
  `key_pepper` no API key is recognised). Keys given as environment variables are not
  files and are not in the archive; the command names them so they are kept too;
- `manifest.json` — what the archive holds, when and from which engine.

`restore` writes into an empty (or missing) data dir only, and checks the whole archive
(names, manifest, the database's own integrity check) in a temporary folder before it
writes anything there.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sqlite3
import tarfile
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from portal import db
from portal.config import GENERATED_FILES, GENERATED_SETTINGS, open_private

FORMAT = "loyalty-portal-backup"
FORMAT_VERSION = 1
DATABASE_MEMBER = "loyalty.db"
MANIFEST_MEMBER = "manifest.json"
PROGRESS_AFTER = 1.0  # seconds: a copy taking longer shows a progress line
PROGRESS_EVERY = 0.5  # seconds between progress lines


class BackupError(Exception):
    """The backup or restore cannot be done; the message is one line for the operator."""


@dataclass
class BackupReport:
    path: Path
    engine: str
    database_bytes: int = 0
    keys: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def sqlite_path(database_url: str) -> Path | None:
    """The file of a `sqlite:///…` URL, absolute (None for PostgreSQL)."""
    path = db.sqlite_path(database_url)
    return path.expanduser().resolve() if path is not None else None


def copy_sqlite(source: Path, target: Path, progress: Callable[[str], None] | None = None) -> int:
    """A consistent copy of the SQLite database `source` into the new file `target`
    (bytes copied). One backup step: one read snapshot, so concurrent writers neither wait
    nor make it start over; a copy that takes a while reports its progress."""
    if not source.is_file():
        raise BackupError(f"there is no database at {source}")
    open_private(target, exclusive=True).close()
    src = sqlite3.connect(source, timeout=30)
    dst = sqlite3.connect(target)
    done = threading.Event()
    try:
        size = source.stat().st_size

        def report():
            started = time.monotonic()
            while not done.wait(PROGRESS_EVERY):
                elapsed = time.monotonic() - started
                if progress is not None and elapsed >= PROGRESS_AFTER:
                    copied = target.stat().st_size if target.exists() else 0
                    progress(f"copying the database: {copied / 1e6:.1f} of about {size / 1e6:.1f} MB, "
                             f"{elapsed:.0f} s")

        watcher = threading.Thread(target=report, daemon=True)
        watcher.start()
        src.backup(dst, pages=-1)
        done.set()
        watcher.join()
        dst.execute("PRAGMA journal_mode=DELETE")  # the file alone is the whole database
    except sqlite3.Error as exc:
        raise BackupError(f"cannot copy the database: {exc}") from None
    finally:
        done.set()
        src.close()
        dst.close()
    return target.stat().st_size


def _tar_add_bytes(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o600
    info.mtime = int(time.time())
    archive.addfile(info, io.BytesIO(data))


def create_backup(target: Path, *, data_dir: Path, database_url: str,
                  progress: Callable[[str], None] | None = None) -> BackupReport:
    """Write the archive `target` (which must not exist yet). On failure nothing is left
    behind."""
    target = Path(target).expanduser().resolve()
    if target.exists():
        raise BackupError(f"{target} exists already; choose a new file name (nothing was written)")
    if not target.parent.is_dir():
        raise BackupError(f"the folder {target.parent} does not exist")
    engine = "sqlite" if database_url.startswith("sqlite:") else "postgresql"
    report = BackupReport(path=target, engine=engine)
    partial = target.with_name(f".{target.name}.partial")
    with tempfile.TemporaryDirectory(prefix="loyalty-backup-") as scratch:
        os.chmod(scratch, 0o700)
        copy = Path(scratch) / DATABASE_MEMBER
        if engine == "sqlite":
            report.database_bytes = copy_sqlite(sqlite_path(database_url), copy, progress)
        else:
            report.notes.append("PostgreSQL: the database is not in this archive. Back it up with pg_dump "
                                "(e.g. pg_dump --format=custom --file=loyalty.dump DBNAME) and keep the dump "
                                "with this archive.")
        keys = {}
        for name in GENERATED_FILES:
            path = data_dir / name
            if path.is_file():
                keys[name] = path.read_bytes()
            if os.environ.get(GENERATED_SETTINGS[name]):
                report.notes.append(f"{GENERATED_SETTINGS[name]} is set in the environment: it is not a file, so it is not "
                                    "in this archive; keep its value with the backup.")
        report.keys = sorted(keys)
        manifest = {
            "format": FORMAT, "version": FORMAT_VERSION, "engine": engine,
            "created_at": datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
            "database": DATABASE_MEMBER if engine == "sqlite" else None,
            "keys": report.keys,
        }
        try:
            with open_private(partial, exclusive=True) as handle, tarfile.open(fileobj=handle, mode="w:gz") as archive:
                _tar_add_bytes(archive, MANIFEST_MEMBER, json.dumps(manifest, indent=2).encode())
                if engine == "sqlite":
                    archive.add(copy, arcname=DATABASE_MEMBER)
                for name, data in keys.items():
                    _tar_add_bytes(archive, f"keys/{name}", data)
            os.replace(partial, target)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
    return report


# -- restore ------------------------------------------------------------------------------


def _read_archive(source: Path, scratch: Path) -> dict:
    """Unpack and check the archive into `scratch`; returns its manifest."""
    allowed = {MANIFEST_MEMBER, DATABASE_MEMBER, "keys", *(f"keys/{name}" for name in GENERATED_FILES)}
    try:
        with tarfile.open(source, mode="r:gz") as archive:
            members = archive.getmembers()
            for member in members:
                if member.name not in allowed or not (member.isfile() or (member.isdir() and member.name == "keys")):
                    raise BackupError(f"{source} holds {member.name!r}, which no backup of this platform holds")
            archive.extractall(scratch, filter="data")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BackupError(f"{source} is not a readable backup archive ({exc.__class__.__name__}: {exc})") from None
    try:
        manifest = json.loads((scratch / MANIFEST_MEMBER).read_text())
    except (OSError, ValueError):
        raise BackupError(f"{source} has no manifest: it is not a backup made by loyalty-portal backup") from None
    if manifest.get("format") != FORMAT or manifest.get("version") != FORMAT_VERSION:
        raise BackupError(f"{source} is not a backup this version can restore (format {manifest.get('format')!r}, "
                          f"version {manifest.get('version')!r})")
    if manifest.get("engine") == "sqlite":
        database = scratch / DATABASE_MEMBER
        if not database.is_file():
            raise BackupError(f"{source} names a database but does not hold it")
        try:
            with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as conn:
                verdict = conn.execute("PRAGMA integrity_check").fetchone()[0]
        except sqlite3.Error as exc:
            raise BackupError(f"the database in {source} cannot be read: {exc}") from None
        if verdict != "ok":
            raise BackupError(f"the database in {source} fails SQLite's integrity check: {verdict}")
    return manifest


def restore_backup(source: Path, *, data_dir: Path, database_url: str) -> tuple[dict, list[str]]:
    """Restore the archive `source` into `data_dir`, which must be empty or missing (and,
    for SQLite, the database file must not exist). Everything is checked before anything
    is written. Returns the manifest and notes for the operator."""
    source = Path(source).expanduser().resolve()
    if not source.is_file():
        raise BackupError(f"there is no backup file at {source}")
    if data_dir.exists() and (not data_dir.is_dir() or any(data_dir.iterdir())):
        held = ", ".join(sorted(p.name for p in data_dir.iterdir())[:5]) if data_dir.is_dir() else "a file"
        raise BackupError(f"the data dir {data_dir} is not empty (it holds {held}); restore only into an empty "
                          "or new data dir (set LOYALTY_DATA_DIR). Nothing was written.")
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="loyalty-restore-") as scratch_name:
        scratch = Path(scratch_name)
        os.chmod(scratch, 0o700)
        manifest = _read_archive(source, scratch)
        unknown = [name for name in manifest.get("keys", []) if name not in GENERATED_SETTINGS]
        if unknown:  # a crafted manifest must not name files outside the data dir
            raise BackupError(f"{source} lists unknown key files ({', '.join(map(repr, unknown[:3]))}): "
                              "not a backup made by loyalty-portal backup. Nothing was written.")
        database_target = sqlite_path(database_url)
        if manifest["engine"] == "sqlite" and database_target is None:
            raise BackupError("this backup holds a SQLite database but LOYALTY_DATABASE_URL names PostgreSQL; "
                              "unset it to restore into the data dir. Nothing was written.")
        if manifest["engine"] == "sqlite" and database_target.exists():
            raise BackupError(f"a database exists already at {database_target}. Nothing was written.")
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(data_dir, 0o700)
        for name in manifest.get("keys", []):
            key = scratch / "keys" / name
            if key.is_file():
                with open_private(data_dir / name, exclusive=True) as handle:
                    handle.write(key.read_bytes())
            if os.environ.get(GENERATED_SETTINGS[name]):
                notes.append(f"{GENERATED_SETTINGS[name]} is set in the environment and wins over the restored {name} file.")
        if manifest["engine"] == "sqlite":
            with open_private(database_target, exclusive=True) as handle, open(scratch / DATABASE_MEMBER, "rb") as copy:
                shutil.copyfileobj(copy, handle)
        else:
            notes.append("PostgreSQL: restore the database from its pg_dump (e.g. pg_restore --dbname=DBNAME "
                         "loyalty.dump); this archive held the keys only.")
    return manifest, notes
