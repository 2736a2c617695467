"""Durability: the server is SIGKILLed (master and workers at once) in the middle of a write
load and started again on the same database. Every write it acknowledged with a 2xx is in
the ledger, and the balance equals the sum of the entries. SQLite and PostgreSQL."""

from __future__ import annotations

import random
import threading
import time

import pytest
import requests

WRITERS = 6
LOAD_SECONDS = 3.0


def test_every_acknowledged_write_survives_a_sigkill_of_the_server(own_server, own_partner, request):
    members = [own_partner.create_member() for _ in range(3)]
    acknowledged: list[dict] = []  # the entries the server answered 201 for
    lock = threading.Lock()
    stop = threading.Event()

    def write_until_the_server_dies(n: int):
        rng = random.Random(n)
        i = 0
        while not stop.is_set():
            member = rng.choice(members)
            redeem = i % 4 == 3
            path = f"/v1/members/{member}/cashback/{'redeem' if redeem else 'credit'}"
            try:
                res = own_partner.post(path, {"amount": rng.randint(1, 50), "reference": f"w{n}-{i}"}, timeout=10)
            except requests.RequestException:
                return  # the server is gone; anything unanswered may or may not have landed
            if res.status_code == 201:
                with lock:
                    acknowledged.append(res.json())
            else:
                assert res.status_code == 409 and redeem, res.text  # a redeem beyond the balance
            i += 1

    writers = [threading.Thread(target=write_until_the_server_dies, args=(n,)) for n in range(WRITERS)]
    for writer in writers:
        writer.start()
    time.sleep(LOAD_SECONDS)
    own_server.kill()
    stop.set()
    for writer in writers:
        writer.join(timeout=30)
    acked = len(acknowledged)
    assert acked > 50, "the load never got going"

    own_server.start()  # same port, same database: a restart after a crash

    found_ids: set[str] = set()
    for member in members:
        entries = own_partner.cashback_history(member)
        found_ids |= {e["id"] for e in entries}
        by_id = {e["id"]: e for e in entries}
        for ack in (a for a in acknowledged if a["member_id"] == member):
            assert ack["id"] in by_id, f"acknowledged entry {ack['id']} was lost"
            assert by_id[ack["id"]]["amount"] == ack["amount"]
        balance = own_partner.cashback_balance(member)
        assert balance == sum(e["amount"] for e in entries)
        if entries:
            assert entries[0]["balance_after"] == balance  # newest first
    found = sum(1 for a in acknowledged if a["id"] in found_ids)
    assert found == acked
    print(f"\n[durability {request.node.callspec.id}] acknowledged before SIGKILL: {acked}, "
          f"found after restart: {found}, entries in the ledger: {len(found_ids)}")


@pytest.mark.sqlite_only  # SQLite's flush setting; PostgreSQL's default synchronous_commit is durable
def test_sqlite_writes_are_on_disk_before_they_return_and_only_the_gates_nonces_are_not(app, monkeypatch):
    """What docs/production.md ("Durability") promises: a connection commits with
    synchronous=FULL (2), which survives power loss; a write transaction commits with
    NORMAL (1) and then flushes the write-ahead log itself before it returns; the gate's
    nonce insert alone runs with NORMAL and no flush."""
    import os

    from portal import db

    flushed = []
    real_fdatasync = os.fdatasync

    def fdatasync(fd):
        flushed.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fdatasync(fd)

    monkeypatch.setattr(os, "fdatasync", fdatasync)

    def synchronous() -> int:
        return db.database.execute_sql("PRAGMA synchronous").fetchone()[0]

    with app.app_context():
        assert synchronous() == 2
        with db.ephemeral_write():
            assert synchronous() == 1
        assert synchronous() == 2 and flushed == []
        with db.write_transaction():
            db.database.execute_sql("CREATE TABLE probe (x)")
            with db.write_transaction():  # nested: a savepoint, flushed with the outer commit
                assert synchronous() == 1
            assert flushed == []
        assert flushed == [db.database.obj.database + "-wal"]
        assert synchronous() == 2
