"""`loyalty-portal backup` / `restore` (DESIGN.md §14): a backup taken while stamps are
being written restores into a fresh data dir where every balance equals the sum of its
entries and a key from before still signs calls; restore refuses a data dir that holds
anything, and a file that is no backup, writing nothing."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import tarfile
import threading
import time
from contextlib import closing

import pytest
import requests

from tests.api.helpers import SignedAuth
from tests.conftest import LiveServer


def run_cli(data_dir, *args, env=None):
    full = {**os.environ, "LOYALTY_DATA_DIR": str(data_dir), "LOYALTY_PASSWORD_HASHING": "fast"}
    for name in ("LOYALTY_DATABASE_URL", "LOYALTY_SECRET_KEY", "LOYALTY_ENCRYPTION_KEY", "LOYALTY_KEY_PEPPER"):
        full.pop(name, None)
    full.update(env or {})
    return subprocess.run([sys.executable, "-m", "portal.cli", *args], env=full, capture_output=True, text=True,
                          timeout=120)


def balances_match_entries(path) -> tuple[int, int]:
    """(balances checked, entries) after asserting each stamp balance is the sum of its
    entries and each member's cashback balance the sum of theirs."""
    with closing(sqlite3.connect(path)) as conn:
        stamps = conn.execute(
            "SELECT b.member_id, b.card_id, b.balance, COALESCE(SUM(e.amount), 0) FROM stamp_balance b "
            "LEFT JOIN ledger_entry e ON e.member_id = b.member_id AND e.card_id = b.card_id AND e.kind = 'stamps' "
            "GROUP BY b.id").fetchall()
        cashback = conn.execute(
            "SELECT m.id, m.cashback_balance, COALESCE(SUM(e.amount), 0) FROM member m "
            "LEFT JOIN ledger_entry e ON e.member_id = m.id AND e.kind = 'cashback' GROUP BY m.id").fetchall()
        entries = conn.execute("SELECT COUNT(*) FROM ledger_entry").fetchone()[0]
    assert all(balance == total for *_, balance, total in stamps), stamps
    assert all(balance == total for _, balance, total in cashback), cashback
    return len(stamps), entries


def test_a_backup_under_write_load_restores_consistent_with_working_keys(tmp_path):
    (tmp_path / "live").mkdir()
    server = LiveServer(tmp_path / "live", workers=2).start()
    restored = None
    try:
        demo = server.demo()
        auth = SignedAuth(demo["app_id"], demo["app_secret"], demo["test_key"])
        session = requests.Session()
        card = session.get(server.url + "/v1/cards", auth=auth, timeout=10).json()["data"][0]["id"]
        members = [session.post(server.url + "/v1/members", json={"email": f"m{i}@example.com"}, auth=auth,
                                timeout=10).json()["id"] for i in range(3)]
        stop = threading.Event()
        written = []

        def write_stamps(n):
            with requests.Session() as own:
                while not stop.is_set():
                    member = members[len(written) % len(members)]
                    response = own.post(f"{server.url}/v1/members/{member}/stamps", auth=auth, timeout=10,
                                        json={"card_id": card, "count": 1 + n})
                    if response.status_code == 201:
                        written.append(1)
                    own.post(f"{server.url}/v1/members/{member}/cashback/credit", auth=auth, timeout=10,
                             json={"amount": 5})

        writers = [threading.Thread(target=write_stamps, args=(n,)) for n in range(3)]
        for writer in writers:
            writer.start()
        time.sleep(1.0)
        archive = tmp_path / "backup.tar.gz"
        made = server.cli("backup", str(archive))
        time.sleep(0.5)
        stop.set()
        for writer in writers:
            writer.join()
        assert made.returncode == 0, made.stderr
        assert "Backed up the database" in made.stdout and "secret_key" in made.stdout
        assert stat.S_IMODE(archive.stat().st_mode) == 0o600
        assert len(written) > 10  # the copy really ran under load
        with tarfile.open(archive) as opened:
            assert set(opened.getnames()) >= {"manifest.json", "loyalty.db", "keys/encryption_key",
                                              "keys/key_pepper", "keys/secret_key"}

        again = server.cli("backup", str(archive))
        assert again.returncode != 0 and "exists already" in again.stderr

        fresh = tmp_path / "fresh"
        result = run_cli(fresh, "restore", str(archive))
        assert result.returncode == 0, result.stderr
        assert "Restored the database" in result.stdout
        assert stat.S_IMODE(fresh.stat().st_mode) == 0o700
        assert stat.S_IMODE((fresh / "loyalty.db").stat().st_mode) == 0o600
        checked, entries = balances_match_entries(fresh / "loyalty.db")
        assert checked >= 1 and entries >= 1

        restored = LiveServer(fresh).start()
        key = requests.get(restored.url + "/v1/key", auth=auth, timeout=10)
        assert key.status_code == 200, key.text
        listed = requests.get(f"{restored.url}/v1/members/{members[0]}/stamps", auth=auth, timeout=10)
        assert listed.status_code == 200
    finally:
        server.stop()
        if restored is not None:
            restored.stop()


@pytest.fixture
def archive(tmp_path):
    source = tmp_path / "source"
    assert run_cli(source, "demo", "--init").returncode == 0
    path = tmp_path / "b.tar.gz"
    result = run_cli(source, "backup", str(path))
    assert result.returncode == 0, result.stderr
    return path


def test_restore_refuses_a_data_dir_that_holds_anything_and_writes_nothing(tmp_path, archive):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    result = run_cli(busy, "restore", str(archive))
    assert result.returncode != 0
    assert "is not empty" in result.stderr and "Nothing was written" in result.stderr
    lines = result.stderr.strip().splitlines()  # where it would write, then the one-line refusal
    assert len(lines) == 2 and lines[0] == f"Using database sqlite:///{busy / 'loyalty.db'}, data dir {busy}"
    assert sorted(p.name for p in busy.iterdir()) == ["notes.txt"]


def test_restore_refuses_a_file_that_is_no_backup_and_writes_nothing(tmp_path):
    bogus = tmp_path / "bogus.tar.gz"
    bogus.write_bytes(b"not an archive at all")
    target = tmp_path / "target"
    result = run_cli(target, "restore", str(bogus))
    assert result.returncode != 0 and "not a readable backup archive" in result.stderr
    assert not target.exists()

    sneaky = tmp_path / "sneaky.tar.gz"
    with tarfile.open(sneaky, "w:gz") as out:
        info = tarfile.TarInfo("../escape")
        out.addfile(info)
    result = run_cli(target, "restore", str(sneaky))
    assert result.returncode != 0 and "no backup of this platform holds" in result.stderr
    assert not target.exists() and not (tmp_path / "escape").exists()


def test_restore_refuses_a_manifest_naming_files_outside_the_data_dir(tmp_path, archive):
    import io
    import json

    crafted = tmp_path / "crafted.tar.gz"
    with tarfile.open(archive) as original, tarfile.open(crafted, "w:gz") as out:
        for member in original.getmembers():
            data = original.extractfile(member).read() if member.isfile() else None
            if member.name == "manifest.json":
                manifest = json.loads(data)
                manifest["keys"] = [*manifest["keys"], "../outside"]
                data = json.dumps(manifest).encode()
                member.size = len(data)
            out.addfile(member, io.BytesIO(data) if data is not None else None)
    target = tmp_path / "target"
    result = run_cli(target, "restore", str(crafted))
    assert result.returncode != 0 and "unknown key files" in result.stderr and "Nothing was written" in result.stderr
    assert not target.exists() and not (tmp_path / "outside").exists()


def test_backup_on_postgresql_says_to_use_pg_dump_and_keeps_the_keys(tmp_path, postgres_databases):
    url = postgres_databases.create()
    try:
        data = tmp_path / "pg"
        path = tmp_path / "pg.tar.gz"
        made = run_cli(data, "migrate", "--init", env={"LOYALTY_DATABASE_URL": url})
        assert made.returncode == 0, made.stderr
        result = run_cli(data, "backup", str(path), env={"LOYALTY_DATABASE_URL": url})
        assert result.returncode == 0, result.stderr
        assert "pg_dump" in result.stderr
        with tarfile.open(path) as opened:
            names = set(opened.getnames())
        assert "loyalty.db" not in names and "keys/encryption_key" in names
        fresh = tmp_path / "fresh"
        restored = run_cli(fresh, "restore", str(path), env={"LOYALTY_DATABASE_URL": url})
        assert restored.returncode == 0, restored.stderr
        assert "pg_restore" in restored.stderr
        assert (fresh / "encryption_key").read_bytes() == (data / "encryption_key").read_bytes()
        assert not (fresh / "loyalty.db").exists()
    finally:
        postgres_databases.release(url)


def test_a_long_copy_reports_its_progress(tmp_path, monkeypatch):
    from portal import backup

    source = tmp_path / "big.db"
    with closing(sqlite3.connect(source)) as conn:
        conn.execute("CREATE TABLE filler (data BLOB)")
        conn.executemany("INSERT INTO filler VALUES (randomblob(4096))", [()] * 20_000)
        conn.commit()
    monkeypatch.setattr(backup, "PROGRESS_AFTER", 0.0)
    monkeypatch.setattr(backup, "PROGRESS_EVERY", 0.001)
    lines = []
    copied = backup.copy_sqlite(source, tmp_path / "copy.db", lines.append)
    assert copied >= 80_000_000
    assert lines and all(line.startswith("copying the database: ") and " MB" in line for line in lines)
    with closing(sqlite3.connect(tmp_path / "copy.db")) as conn:
        assert conn.execute("SELECT COUNT(*) FROM filler").fetchone()[0] == 20_000
