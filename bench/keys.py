"""How long issuing an API key and looking one up by its hash take.

    python3 bench/keys.py [--keys 20000] [--runs 500]

Builds a SQLite file (WAL, as the server runs it) in a temporary data dir with a realistic
number of keys spread over many applications, then prints the median (and p95) in µs for
`issue_api_key` (generate, HMAC, insert, audit record, commit) and for the /v1 gate's
`find_key` (HMAC + one indexed equality query joining the key's application, partner and
valid App Secrets).
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time

from portal import create_app, db
from portal.api.gate import find_key
from portal.config import current_settings
from portal.credentials import generate_api_key, hash_api_key
from portal.domain.applications import create_application, issue_api_key
from portal.models import ApiKey, Partner, utcnow
from portal.scopes import SCOPE_NAMES


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=20_000, help="keys already in the database")
    parser.add_argument("--apps", type=int, default=500, help="applications they belong to")
    parser.add_argument("--runs", type=int, default=500, help="timed operations of each kind")
    args = parser.parse_args()

    data_dir = tempfile.mkdtemp(prefix="bench-keys-")
    app = create_app({"DATA_DIR": data_dir})
    with app.app_context():
        db.migrate()
        db.database.connect(reuse_if_open=True)
        pepper = current_settings().key_pepper
        partner = Partner.create(name="Bench")
        apps = [create_application(partner, f"App {i}")[0] for i in range(args.apps)]

        # Bulk-load the existing keys directly (fast), in the shape issue_api_key writes.
        plaintexts = []
        rows = []
        for i in range(args.keys):
            mode = "test" if i % 2 else "prod"
            key = generate_api_key(mode)
            plaintexts.append(key)
            rows.append({
                "application": apps[i % len(apps)].id, "name": f"key {i}", "mode": mode,
                "key_hash": hash_api_key(key, pepper), "first4": key[8:12], "last4": key[-4:],
                "scopes": " ".join(SCOPE_NAMES[:4]),
            })
        with db.database.atomic():
            for start in range(0, len(rows), 500):
                ApiKey.insert_many(rows[start:start + 500]).execute()

        issue_times = []
        for i in range(args.runs):
            application = apps[i % len(apps)]
            started = time.perf_counter()
            _, plaintext = issue_api_key(application, name="bench", mode="test", scopes=["stamps_read"])
            issue_times.append((time.perf_counter() - started) * 1e6)
            plaintexts.append(plaintext)

        lookup_times = []
        sample = random.sample(plaintexts, args.runs)
        for plaintext in sample:
            started = time.perf_counter()
            found, _ = find_key(plaintext, utcnow())
            lookup_times.append((time.perf_counter() - started) * 1e6)
            assert found is not None
        miss_times = []
        for _ in range(args.runs):
            unknown = generate_api_key("test")
            started = time.perf_counter()
            assert find_key(unknown, utcnow())[0] is None
            miss_times.append((time.perf_counter() - started) * 1e6)

        # The same lookup without the ORM: HMAC plus the indexed query alone.
        raw_times = []
        for plaintext in sample:
            started = time.perf_counter()
            db.database.execute_sql("SELECT id FROM api_key WHERE key_hash = ?",
                                    (hash_api_key(plaintext, pepper),)).fetchone()
            raw_times.append((time.perf_counter() - started) * 1e6)

        plan = db.database.execute_sql(
            "EXPLAIN QUERY PLAN SELECT * FROM api_key WHERE key_hash = ?", ("x",)).fetchall()
        total = ApiKey.select().count()
        db.database.close()

    print(f"SQLite file in {data_dir}: {total} keys over {args.apps} applications, {args.runs} runs each")
    print(f"issue_api_key          median {statistics.median(issue_times):9.1f} µs   p95 {percentile(issue_times, .95):9.1f} µs")
    print(f"find_key (found)       median {statistics.median(lookup_times):9.1f} µs   p95 {percentile(lookup_times, .95):9.1f} µs")
    print(f"find_key (unknown)     median {statistics.median(miss_times):9.1f} µs   p95 {percentile(miss_times, .95):9.1f} µs")
    print(f"HMAC + indexed SELECT  median {statistics.median(raw_times):9.1f} µs   (the rest of find_key is building the key's objects)")
    print("lookup plan:", "; ".join(str(row[-1]) for row in plan))


if __name__ == "__main__":
    main()
