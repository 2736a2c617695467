"""Benchmark the /v1 gate. Prints figures; asserts nothing.

1. Throughput: runs the production server (`loyalty-portal serve --workers 2`) on a fresh
   data dir and drives it from separate client processes. Every request is signed by the
   client (so client cost is equal): `HEAD /healthz`, `GET /v1/members/{id}/stamps` and
   `GET /healthz`, alternating. Prints requests/s of each and the ratio stamps / HEAD
   /healthz (target >= 0.6, aim 0.8). The ratio's baseline is HEAD: it runs the /healthz
   route through the whole Flask app (hooks, one `SELECT 1`), what GET did until GET
   /healthz came to be answered in front of Flask (portal.app.FrontDoor), which is
   printed too but is no measure of the app's own cost any more.
2. Gate cost vs key count: the median time of `verify_request` (all eight checks, real
   SQLite file) with 10 keys in the table and again with 100,000 (target ratio <= 1.2).

    python3 bench/api_gate.py [--seconds 3] [--clients 3] [--rounds 6] [--verifications 3000]
                              [--allowed-ips] [--redis redis://127.0.0.1:6379/0]

Every /v1 call counts against its key's rate limit (in the database, or in Redis with
`--redis`); the limit is raised so the runs are never refused. `--allowed-ips` gives the
keys an allowed list (`10.0.0.0/8`, `127.0.0.0/8`, `::1`), so check 6 runs too.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

from loyalty_sdk import sign

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


# -- client-side signing (what a partner's code does) --------------------------------------


def signed_headers(method: str, path: str, body: bytes, creds: dict) -> dict:
    """The five authentication headers, signed with the SDK's `sign` as a partner's code would."""
    headers = sign(method, path, body, app_id=creds["app_id"], app_secret=creds["app_secret"])
    headers["Authorization"] = f"Bearer {creds['test_key']}"
    return headers


def _client(url: str, creds: dict, seconds: float, start_at: float, results, method: str = "GET") -> None:
    """One client process: signed GETs in a loop on one keep-alive connection."""
    import requests

    session = requests.Session()
    path = urlsplit(url).path
    while time.time() < start_at:
        time.sleep(0.001)
    deadline = time.monotonic() + seconds
    done = errors = 0
    while time.monotonic() < deadline:
        response = session.request(method, url, headers=signed_headers(method, path, b"", creds), timeout=30)
        if response.status_code == 200:
            done += 1
        else:
            errors += 1
    results.put((done, errors))


def throughput(url: str, creds: dict, *, clients: int, seconds: float, method: str = "GET") -> tuple[float, int]:
    """Requests per second over `clients` processes; also the number of non-200 answers."""
    results = multiprocessing.Queue()
    start_at = time.time() + 0.5
    procs = [multiprocessing.Process(target=_client, args=(url, creds, seconds, start_at, results, method))
             for _ in range(clients)]
    for proc in procs:
        proc.start()
    totals = [results.get() for _ in procs]
    for proc in procs:
        proc.join()
    return sum(d for d, _ in totals) / seconds, sum(e for _, e in totals)


def worker_cpu_seconds(master_pid: int) -> float:
    """User + system CPU of the server's worker processes (children of the master)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == master_pid:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_server_benchmark(args) -> None:
    import requests

    data_dir = Path(tempfile.mkdtemp(prefix="bench-gate-"))
    env = {**os.environ, "LOYALTY_DATA_DIR": str(data_dir),
           # counted on every call, never refused during the runs
           "LOYALTY_RATE_LIMIT_TEST": "1000000", "LOYALTY_RATE_LIMIT_PROD": "1000000"}
    env.pop("LOYALTY_DATABASE_URL", None)
    env.pop("LOYALTY_REDIS_URL", None)
    if args.redis:
        env["LOYALTY_REDIS_URL"] = args.redis
    port = free_port()
    log = open(data_dir / "server.log", "wb")
    server = subprocess.Popen([sys.executable, "-m", "portal.cli", "serve", "--init", "--port", str(port), "--workers", "2"],
                              env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if requests.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.1)
        demo = subprocess.run([sys.executable, "-m", "portal.cli", "demo", "--json"], env=env, cwd=REPO,
                              capture_output=True, text=True, check=True)
        creds = json.loads(demo.stdout)
        if args.allowed_ips:
            set_allowed_ips(env)
        body = json.dumps({"email": "bench@example.com"}).encode()
        headers = {**signed_headers("POST", "/v1/members", body, creds), "Content-Type": "application/json"}
        member = requests.post(base + "/v1/members", data=body, headers=headers, timeout=10).json()
        stamps_url = {"stamps": f"{base}/v1/members/{member['id']}/stamps",
                      "member": f"{base}/v1/members/{member['id']}", "key": f"{base}/v1/key"}[args.endpoint]
        probe = requests.get(stamps_url, headers=signed_headers("GET", urlsplit(stamps_url).path, b"", creds))
        if probe.status_code != 200:
            raise SystemExit(f"GET {stamps_url} answered {probe.status_code}: {probe.text[:200]}")

        # Warm every path (imports, connections, caches) before measuring.
        runs = (("healthz", "HEAD", base + "/healthz"), ("stamps", "GET", stamps_url),
                ("healthz_get", "GET", base + "/healthz"))
        for _, method, url in runs:
            throughput(url, creds, clients=args.clients, seconds=1, method=method)
        rates = {name: [] for name, _, _ in runs}
        cpu = {name: [0.0, 0] for name, _, _ in runs}
        failures = 0
        for _ in range(args.rounds):  # alternate, so drift in machine load hits all alike
            for name, method, url in runs:
                before = worker_cpu_seconds(server.pid)
                rate, errors = throughput(url, creds, clients=args.clients, seconds=args.seconds, method=method)
                cpu[name][0] += worker_cpu_seconds(server.pid) - before
                cpu[name][1] += int(rate * args.seconds)
                rates[name].append(rate)
                failures += errors
        health, stamps, health_get = (statistics.mean(rates[name]) for name, _, _ in runs)
        cpu_health, cpu_stamps, cpu_get = (cpu[name][0] / max(cpu[name][1], 1) * 1000 for name, _, _ in runs)
        print(f"server: loyalty-portal serve --workers 2; {args.clients} client processes, "
              f"{args.rounds} x {args.seconds:.0f} s per endpoint; rate limit counted in "
              f"{'Redis' if args.redis else 'the database'}; allowed IPs {'on' if args.allowed_ips else 'off'}")
        print(f"  HEAD /healthz (signed, through Flask)    {health:8.0f} req/s")
        print(f"  GET {urlsplit(stamps_url).path.replace(member['id'], '{id}'):<37}{stamps:8.0f} req/s (signed)")
        print(f"  throughput ratio stamps / HEAD healthz   {stamps / health:8.2f}   (target >= 0.6, aim 0.8)")
        print(f"  server CPU per request: healthz {cpu_health:.2f} ms, stamps {cpu_stamps:.2f} ms "
              f"(ratio {cpu_health / cpu_stamps:.2f}; less sensitive to other load on the machine)")
        print(f"  GET /healthz (answered in front of Flask) {health_get:7.0f} req/s, "
              f"server CPU {cpu_get:.2f} ms (not the ratio's baseline)")
        if failures:
            print(f"  non-200 answers during the runs: {failures}")
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


ALLOWED_IPS = "10.0.0.0/8\n127.0.0.0/8\n::1"


def set_allowed_ips(env: dict) -> None:
    """Give every key of the server's database an allowed list holding loopback."""
    subprocess.run([sys.executable, "-c",
                    "from portal import create_app; from portal.models import ApiKey; app = create_app(); "
                    f"ctx = app.app_context(); ctx.push(); ApiKey.update(allowed_ips={ALLOWED_IPS!r}).execute()"],
                   env=env, cwd=REPO, check=True)


# -- the gate in-process, with 10 and 100,000 keys -----------------------------------------


def run_key_count_benchmark(args) -> None:
    """Two databases, one with 10 keys and one with 100,000, verified in alternating
    batches, so that changes in the machine's load hit both samples alike."""
    from werkzeug.datastructures import Headers

    from portal import create_app, db
    from portal.api.gate import check_rate_limit, require_scope, verify_request
    from portal.domain.accounts import create_partner_account
    from portal.domain.applications import create_application, issue_api_key
    from portal.models import ApiKey, Nonce

    setups = []
    # One data dir for both apps: settings (the key pepper among them) are per process, so
    # keys issued under the first app must hash the same under the second. Each has its own
    # database file.
    data_dir = Path(tempfile.mkdtemp(prefix="bench-keys-"))
    for total in (10, 100_000):
        app = create_app({"DATA_DIR": str(data_dir), "DATABASE_URL": f"sqlite:///{data_dir / f'keys-{total}.db'}",
                          "RATE_LIMIT_TEST": "1000000", **({"REDIS_URL": args.redis} if args.redis else {})})
        database = db.database.obj  # create_app bound the proxy to this app's file
        with app.app_context():
            db.migrate()
            database.connect(reuse_if_open=True)
            user = create_partner_account("Bench Shop", "bench@example.com", "bench password 123", via="bench")
            application, secret = create_application(user.partner, "Bench app", by=user)
            keys = [issue_api_key(application, name=f"k{i}", mode="test", scopes=["stamps_read"])[1]
                    for i in range(10)]
            # The rest as issue_api_key stores them: keyed hashes of random keys.
            rows = [{"application": application.id, "name": "filler", "mode": "test",
                     "key_hash": hashlib.sha256(secrets.token_bytes(32)).hexdigest(), "first4": "xxxx",
                     "last4": "xxxx", "scopes": "stamps_read"} for _ in range(total - len(keys))]
            with database.atomic():
                for start in range(0, len(rows), 5000):
                    ApiKey.insert_many(rows[start:start + 5000]).execute()
            if args.allowed_ips:
                ApiKey.update(allowed_ips=ALLOWED_IPS).execute()
            database.execute_sql("ANALYZE")
            count = ApiKey.select().count()
        setups.append({"app": app, "database": database, "keys": keys, "count": count, "timings": [],
                       "creds": {"app_id": application.app_id, "app_secret": secret}})

    def batch(setup, n: int, record: bool) -> None:
        db.bind(setup["database"])
        with setup["app"].app_context():
            for i in range(n):
                key = setup["keys"][i % len(setup["keys"])]
                headers = Headers(signed_headers("GET", "/v1/members/mem_x/stamps", b"",
                                                 {**setup["creds"], "test_key": key}))
                started = time.perf_counter()
                caller = verify_request("GET", "/v1/members/mem_x/stamps", "", b"", headers, "127.0.0.1")
                require_scope(caller, "stamps_read")
                check_rate_limit(caller)
                if record:
                    setup["timings"].append(time.perf_counter() - started)
            Nonce.delete().execute()  # only the key table's size differs between the two

    for setup in setups:
        batch(setup, 300, record=False)  # warm caches
    per_batch = 100
    for _ in range(max(1, args.verifications // per_batch)):
        for setup in setups:
            batch(setup, per_batch, record=True)
    small, large = (statistics.median(setup["timings"]) for setup in setups)
    print(f"gate median verification ({len(setups[0]['timings'])} signed requests each, SQLite file, "
          "all eight checks, alternating batches):")
    print(f"  {setups[0]['count']:>7} keys: {small * 1e6:8.0f} µs")
    print(f"  {setups[1]['count']:>7} keys: {large * 1e6:8.0f} µs")
    print(f"  ratio 100,000 / 10 keys: {large / small:.2f}   (target <= 1.2)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="measuring time per endpoint and round")
    parser.add_argument("--clients", type=int, default=3, help="client processes")
    parser.add_argument("--rounds", type=int, default=6, help="alternating rounds per endpoint")
    parser.add_argument("--verifications", type=int, default=3000, help="gate calls per key-count sample")
    parser.add_argument("--endpoint", choices=("stamps", "member", "key"), default="stamps",
                        help="the signed API call compared with /healthz (stamps is the one with a target)")
    parser.add_argument("--allowed-ips", action="store_true", help="give the keys allowed IPs (check 6 runs)")
    parser.add_argument("--redis", metavar="URL", help="count rate limits in this Redis instead of the database")
    parser.add_argument("--skip-server", action="store_true", help="only the key-count benchmark")
    parser.add_argument("--skip-keys", action="store_true", help="only the throughput benchmark")
    args = parser.parse_args()
    if not args.skip_server:
        run_server_benchmark(args)
    if not args.skip_keys:
        run_key_count_benchmark(args)


if __name__ == "__main__":
    main()
