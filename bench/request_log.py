"""The request log with a million recorded requests: page loads and the usage chart's query.

    python3 bench/request_log.py [--rows 1000000] [--runs 20] [--engine sqlite|postgres|both]

For each engine (PostgreSQL from LOYALTY_TEST_DATABASE_URL or LOYALTY_BENCH_DATABASE_URL; a
database `loyalty_bench_request_log` is created there and dropped after), builds a
migrated database, one partner with one application and three keys, and fills
`request_record` with `--rows` requests spread over the last 14 days (5% failed, eight
endpoints, both modes) in SQL (a recursive CTE on SQLite, generate_series on
PostgreSQL), and the day counts from them, as the flusher would have. The worst case:
one application owns every row. Then it prints the median and p95, in ms, of:

- the request-log page (signed-in owner, the app's test client, whole response): newest
  page, the "Failed" filter, one endpoint, one key, and the page after "Older";
- the usage chart's query (`daily_counts`, 14 days) and the whole application page
  (chart, per-key 7-day counts and the rest);
- a lookup by request id.

Target: under 200 ms each. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from portal import create_app, db  # noqa: E402
from portal.domain import request_log  # noqa: E402
from portal.domain.accounts import create_partner_account  # noqa: E402
from portal.domain.applications import create_application, issue_api_key  # noqa: E402
from portal.models import utcnow  # noqa: E402

PASSWORD = "bench passphrase, long enough"
ROUTES = ["/v1/key", "/v1/members", "/v1/members/{member_id}", "/v1/members/{member_id}/stamps",
          "/v1/members/{member_id}/cashback", "/v1/claims", "/v1/referrals", "/v1/rewards"]
PG_DB = "loyalty_bench_request_log"

FILL_SQLITE = """
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < :rows)
INSERT INTO request_record (created_at, request_id, partner_id, application_id, api_key_id, key_masked, mode,
    method, route, path, status, error_code, error_message, latency_ms, client_ip, idempotency_key, replayed,
    user_agent, canonical_string)
SELECT strftime('%Y-%m-%d %H:%M:%f', :start, '+' || (i * :spread) || ' seconds'),
       printf('req_%024x', i), :partner, :app, :k1 + (i % 3), 'test_sk_abcd…wxyz',
       CASE WHEN i % 3 = 2 THEN 'prod' ELSE 'test' END, CASE WHEN i % 4 = 0 THEN 'POST' ELSE 'GET' END,
       :r0, '/v1/members/mem_' || (i % 997), CASE WHEN i % 20 = 0 THEN 401 ELSE 200 END,
       CASE WHEN i % 20 = 0 THEN 'invalid_signature' END, NULL, 3.5, '10.0.0.1', NULL, 0,
       'loyalty-sdk/0.1.0 python/3.12.1', NULL
FROM n
"""

FILL_POSTGRES = """
INSERT INTO request_record (created_at, request_id, partner_id, application_id, api_key_id, key_masked, mode,
    method, route, path, status, error_code, error_message, latency_ms, client_ip, idempotency_key, replayed,
    user_agent, canonical_string)
SELECT %(start)s::timestamp + make_interval(secs => i * %(spread)s),
       'req_' || lpad(to_hex(i), 24, '0'), %(partner)s, %(app)s, %(k1)s + (i %% 3), 'test_sk_abcd…wxyz',
       CASE WHEN i %% 3 = 2 THEN 'prod' ELSE 'test' END, CASE WHEN i %% 4 = 0 THEN 'POST' ELSE 'GET' END,
       %(r0)s, '/v1/members/mem_' || (i %% 997), CASE WHEN i %% 20 = 0 THEN 401 ELSE 200 END,
       CASE WHEN i %% 20 = 0 THEN 'invalid_signature' END, NULL, 3.5, '10.0.0.1', NULL, false,
       'loyalty-sdk/0.1.0 python/3.12.1', NULL
FROM generate_series(0, %(rows)s - 1) AS i
"""

# One row in eight gets another endpoint (the Endpoint filter then finds 1 in 8).
SPREAD_ROUTES = "UPDATE request_record SET route = {case} WHERE id % 8 <> 0"

DAY_COUNTS = """
INSERT INTO request_day_count (application_id, partner_id, api_key_id, mode, day, succeeded, failed)
SELECT application_id, partner_id, api_key_id, mode, {day}, SUM(CASE WHEN status < 400 THEN 1 ELSE 0 END),
       SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END)
FROM request_record GROUP BY application_id, partner_id, api_key_id, mode, {day}
"""


def timed(fn, runs: int) -> tuple[float, float]:
    fn()  # warm caches, as a page viewed twice would
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.95))]


def login(client, email: str) -> None:
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    response = client.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 303, "log-in failed"


def run(engine: str, url: str, data_dir: str, rows: int, runs: int) -> None:
    app = create_app({"DATA_DIR": data_dir, "DATABASE_URL": url, "PASSWORD_HASHING": "fast"})
    db.migrate()
    with app.app_context():
        user = create_partner_account("Bench Bakery", "bench@example.com", PASSWORD)
        application, _ = create_application(user.partner, "Shop", by=user)
        keys = [issue_api_key(application, name=f"key {i}", mode="test", scopes=["stamps_read"], by=user)[0]
                for i in range(3)]
        spread = 14 * 86400 / rows
        start = utcnow().replace(microsecond=0) - timedelta(days=14)
        started = time.perf_counter()
        params = {"rows": rows, "spread": spread, "partner": user.partner_id, "app": application.id,
                  "k1": keys[0].id, "r0": ROUTES[0], "start": str(start)}
        case = "CASE id % 8 " + " ".join(f"WHEN {i} THEN '{r}'" for i, r in enumerate(ROUTES) if i) + " ELSE route END"
        with db.database.atomic():
            if engine == "sqlite":
                db.database.execute_sql(FILL_SQLITE, params)  # named parameters
            else:
                db.database.execute_sql(FILL_POSTGRES, params)
            spread_sql = SPREAD_ROUTES.format(case=case)
            db.database.execute_sql(spread_sql if engine == "sqlite" else spread_sql.replace("%", "%%"))
            day = "date(created_at)" if engine == "sqlite" else "created_at::date"
            db.database.execute_sql(DAY_COUNTS.format(day=day))
        db.database.execute_sql("ANALYZE")
        fill_s = time.perf_counter() - started
        count = db.database.execute_sql("SELECT count(*) FROM request_record").fetchone()[0]
        last = db.database.execute_sql("SELECT request_id FROM request_record ORDER BY id DESC LIMIT 1").fetchone()[0]
        if engine == "sqlite":
            db.database.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            size = Path(url.removeprefix("sqlite:///")).stat().st_size
        else:
            size = db.database.execute_sql("SELECT pg_total_relation_size('request_record')").fetchone()[0]
    db.close_all()

    print(f"{engine}: {count:,} requests recorded in {fill_s:.1f} s (one application, 3 keys, 14 days); "
          f"{size / count:.0f} bytes a request with its indexes")
    client = app.test_client()
    login(client, "bench@example.com")
    base = f"/developer/apps/{application.app_id}/requests"
    first = client.get(base).get_data(as_text=True)
    older = re.search(r'<a href="([^"]+)"[^>]*>Older</a>', first).group(1).replace("&amp;", "&")

    def page(path):
        def fetch():
            response = client.get(path)
            assert response.status_code == 200, (path, response.status_code)
        return fetch

    figures = [
        ("request log, newest page", page(base)),
        ("request log, Status: Failed", page(base + "?status=failed")),
        ("request log, one Endpoint", page(base + "?route=" + ROUTES[3])),
        ("request log, one Key + Mode", page(base + f"?key={keys[1].id}&mode=test")),
        ("request log, after Older", page(older)),
        ("request page (lookup by id)", page(f"{base}/{last}")),
        ("application page (chart + key counts)", page(f"/developer/apps/{application.app_id}")),
    ]
    for label, fn in figures:
        median, p95 = timed(fn, runs)
        print(f"  {label:<42} {median:7.1f} ms median, {p95:7.1f} ms p95")

    def chart_query():
        with app.app_context():
            request_log.daily_counts(application)

    median, p95 = timed(chart_query, runs)
    print(f"  {'usage chart query (daily_counts, 14 days)':<42} {median:7.1f} ms median, {p95:7.1f} ms p95")
    print("  target: under 200 ms each")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--engine", choices=("sqlite", "postgres", "both"), default="both")
    args = parser.parse_args()
    request_log.FLUSH_EVERY = 3600  # nothing here goes through /v1

    if args.engine in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as tmp:
            run("sqlite", f"sqlite:///{tmp}/loyalty.db", tmp, args.rows, args.runs)
    if args.engine in ("postgres", "both"):
        admin_url = os.environ.get("LOYALTY_BENCH_DATABASE_URL") or os.environ.get("LOYALTY_TEST_DATABASE_URL")
        if not admin_url:
            print("postgres: skipped (set LOYALTY_TEST_DATABASE_URL or LOYALTY_BENCH_DATABASE_URL)")
            return
        import psycopg2

        admin = psycopg2.connect(admin_url)
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)')
            cur.execute(f'CREATE DATABASE "{PG_DB}"')
        url = admin_url.split("?", 1)[0].rsplit("/", 1)[0] + "/" + PG_DB
        try:
            with tempfile.TemporaryDirectory() as tmp:
                run("postgres", url, tmp, args.rows, args.runs)
        finally:
            db.close_all()
            with admin.cursor() as cur:
                cur.execute(f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)')
            admin.close()


if __name__ == "__main__":
    main()
