"""Soak: a bounded mixed load against the production server, per engine. Prints figures.

For each engine (SQLite, and PostgreSQL when a server URL is given) it starts
`loyalty-portal serve --workers N` on a fresh database on loopback (the tests' LiveServer,
from tests/conftest.py), creates the demo
partner and a set of members, then drives it for `--seconds` (at most 120) from several
client processes, each a partner integration signing its own calls (loyalty_sdk's
LoyaltyAuth over `requests`): about 60 % reads (member, cashback balance, stamps, cashback
history) and 40 % writes (cashback credit and redeem, stamps, new members). It prints
throughput, p50/p99 latency and errors (5xx, transport failures and unexpected 4xx; a 409
insufficient_balance is an answer, not an error), then checks every member's balance
against the sum of its ledger entries.

    python3 bench/soak.py [--seconds 60] [--clients 4] [--workers 2]
                          [--engines sqlite,postgres] [--postgres-url postgresql://postgres@127.0.0.1:5432/test]

The PostgreSQL URL defaults to LOYALTY_TEST_DATABASE_URL; the soak creates its own
database beside it (`loyalty_soak_<pid>`) and drops it afterwards.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # for tests.conftest
MAX_SECONDS = 120
MEMBERS = 40


# -- the server -----------------------------------------------------------------------------


def _server(database_url: str | None, workers: int):
    """The tests' LiveServer on a fresh data dir, running this checkout's code, with the
    database at `database_url` (None: a SQLite file in the data dir); not started yet."""
    from tests.conftest import LiveServer

    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    if database_url:
        env["LOYALTY_DATABASE_URL"] = database_url
    return LiveServer(Path(tempfile.mkdtemp(prefix="loyalty-soak-")), workers=workers, env=env)


# -- the clients ----------------------------------------------------------------------------


def _session(creds: dict):
    import requests
    from loyalty_sdk.signing import LoyaltyAuth

    session = requests.Session()
    session.auth = LoyaltyAuth(creds["app_id"], creds["app_secret"], creds["test_key"])
    return session


def _pick(rng: random.Random, members: list[str], card_id: str):
    """One request of the mix: (label, method, path, json body or None)."""
    member = rng.choice(members)
    roll = rng.random()
    if roll < 0.20:
        return "read member", "GET", f"/v1/members/{member}", None
    if roll < 0.35:
        return "read cashback", "GET", f"/v1/members/{member}/cashback", None
    if roll < 0.50:
        return "read stamps", "GET", f"/v1/members/{member}/stamps", None
    if roll < 0.60:
        return "read history", "GET", f"/v1/members/{member}/cashback/history?limit=10", None
    if roll < 0.75:
        return "credit cashback", "POST", f"/v1/members/{member}/cashback/credit", {"amount": rng.randint(1, 500)}
    if roll < 0.87:
        return "redeem cashback", "POST", f"/v1/members/{member}/cashback/redeem", {"amount": rng.randint(1, 300)}
    if roll < 0.97:
        return "add stamps", "POST", f"/v1/members/{member}/stamps", {"card_id": card_id, "count": rng.randint(1, 3)}
    return "create member", "POST", "/v1/members", {"email": f"soak-{uuid.uuid4().hex[:16]}@example.com"}


def _expected(label: str, status: int, body: str) -> bool:
    if label == "create member":
        return status == 201
    if label.startswith("read"):
        return status == 200
    if label == "redeem cashback" and status == 409:
        return "insufficient_balance" in body
    return status == 201


def _client(n: int, url: str, creds: dict, members: list[str], card_id: str, seconds: float, start_at: float,
            results) -> None:
    import requests

    rng = random.Random(n)
    session = _session(creds)
    latencies, errors, count, samples = [], 0, 0, []
    while time.time() < start_at:
        time.sleep(0.001)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        label, method, path, body = _pick(rng, members, card_id)
        started = time.perf_counter()
        try:
            response = session.request(method, url + path, json=body, timeout=30)
            ok = _expected(label, response.status_code, response.text)
            detail = f"{label}: {response.status_code} {response.text[:160]}"
        except requests.RequestException as exc:
            ok, detail = False, f"{label}: {exc.__class__.__name__}"
        latencies.append(time.perf_counter() - started)
        count += 1
        if not ok:
            errors += 1
            if len(samples) < 3:
                samples.append(detail)
    results.put({"latencies": latencies, "errors": errors, "count": count, "samples": samples})


# -- one engine -------------------------------------------------------------------------------


def soak(engine: str, database_url: str | None, args) -> dict:
    server = _server(database_url, args.workers).start()  # `serve` migrates the database first
    try:
        creds = server.demo()
        session = _session(creds)
        card_id = session.get(server.url + "/v1/cards", timeout=30).json()["data"][0]["id"]
        members = []
        for _ in range(MEMBERS):
            res = session.post(server.url + "/v1/members", json={"email": f"soak-{uuid.uuid4().hex[:16]}@example.com"},
                               timeout=30)
            res.raise_for_status()
            members.append(res.json()["id"])

        results = multiprocessing.Queue()
        start_at = time.time() + 1.0
        clients = [multiprocessing.Process(target=_client, args=(n, server.url, creds, members, card_id,
                                                                 args.seconds, start_at, results))
                   for n in range(args.clients)]
        for client in clients:
            client.start()
        outcomes = [results.get(timeout=args.seconds + 120) for _ in clients]
        for client in clients:
            client.join()

        latencies = sorted(x for o in outcomes for x in o["latencies"])
        count = sum(o["count"] for o in outcomes)
        errors = sum(o["errors"] for o in outcomes)
        mismatched = _ledger_mismatches(session, server.url, members)
        return {
            "engine": engine, "requests": count, "seconds": args.seconds,
            "throughput": count / args.seconds,
            "p50_ms": statistics.median(latencies) * 1000 if latencies else float("nan"),
            "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000 if latencies else float("nan"),
            "errors": errors, "error_samples": [s for o in outcomes for s in o["samples"]][:5],
            "ledger_mismatches": mismatched,
        }
    finally:
        server.stop()


def _ledger_mismatches(session, url: str, members: list[str]) -> int:
    """Members whose cashback balance is not the sum of their ledger entries."""
    bad = 0
    for member in members:
        balance = session.get(f"{url}/v1/members/{member}/cashback", timeout=30).json()["balance"]
        total, cursor = 0, None
        while True:
            path = f"{url}/v1/members/{member}/cashback/history?limit=100" + (f"&starting_after={cursor}" if cursor else "")
            page = session.get(path, timeout=30).json()
            total += sum(e["amount"] for e in page["data"])
            if not page["has_more"]:
                break
            cursor = page["data"][-1]["id"]
        bad += balance != total
    return bad


class PostgresDatabase:
    """A database of its own beside the one the admin URL names, dropped afterwards."""

    def __init__(self, admin_url: str):
        import psycopg2

        self.admin = psycopg2.connect(admin_url, connect_timeout=5)
        self.admin.autocommit = True
        self.name = f"loyalty_soak_{os.getpid()}"
        head, _, query = admin_url.partition("?")
        self.url = f"{head.rsplit('/', 1)[0]}/{self.name}" + (f"?{query}" if query else "")
        with self.admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            cur.execute(f'CREATE DATABASE "{self.name}"')

    def drop(self) -> None:
        with self.admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        self.admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60, help=f"load per engine (at most {MAX_SECONDS})")
    parser.add_argument("--clients", type=int, default=4, help="client processes")
    parser.add_argument("--workers", type=int, default=2, help="server worker processes")
    parser.add_argument("--engines", default="sqlite,postgres")
    parser.add_argument("--postgres-url", default=os.environ.get("LOYALTY_TEST_DATABASE_URL", ""))
    args = parser.parse_args()
    args.seconds = max(1.0, min(args.seconds, MAX_SECONDS))

    reports = []
    for engine in [e.strip() for e in args.engines.split(",") if e.strip()]:
        if engine == "sqlite":
            reports.append(soak("sqlite", None, args))
        elif engine == "postgres":
            if not args.postgres_url:
                print("postgres: skipped (no --postgres-url and no LOYALTY_TEST_DATABASE_URL)")
                continue
            database = PostgresDatabase(args.postgres_url)
            try:
                reports.append(soak("postgres", database.url, args))
            finally:
                database.drop()
        else:
            raise SystemExit(f"unknown engine {engine!r}")

    print(f"\nsoak: {args.clients} client processes, server with {args.workers} workers, "
          f"{args.seconds:.0f} s per engine, ~60 % reads / 40 % writes")
    print(f"{'engine':<10}{'requests':>10}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}{'ledger ok':>11}")
    for r in reports:
        print(f"{r['engine']:<10}{r['requests']:>10}{r['throughput']:>10.1f}{r['p50_ms']:>10.1f}"
              f"{r['p99_ms']:>10.1f}{r['errors']:>8}{'yes' if not r['ledger_mismatches'] else 'NO':>11}")
        for sample in r["error_samples"]:
            print(f"    e.g. {sample}")


if __name__ == "__main__":
    main()
