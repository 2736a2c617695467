"""The request path against the stack's own limit, measured with wrk. Prints figures; asserts nothing.

In one run it starts, each on a port of its own:

- a bare Flask app answering {"status": "ok"} under the same gunicorn settings as
  `loyalty-portal serve` (2 workers x 4 threads, gthread, no access log): the stack's limit;
- `loyalty-portal serve` on SQLite (a fresh data dir);
- `loyalty-portal serve` on PostgreSQL (a fresh database, created here and dropped at the end),
  unless --engines says otherwise;

creates the demo partner on each portal and a member, gives the demo's keys an allowed-IP
list (loopback inside it) and raises the keys' rate limit so that every call is counted
but none refused (the guardrails and the request log are on, as in production), then measures in alternating rounds
(bare Flask first in every engine's turn, so drift in the machine's load hits all alike):
bare Flask /healthz, portal /healthz, a signed read (GET /v1/members/{id}/stamps) and a
signed write (POST /v1/members/{id}/stamps, 1 stamp on the demo's coffee card). On SQLite
also the floor under the signed read (bench/floor_app.py: that read's statements, hashes and
JSON in a bare WSGI app, under the bare app's settings, without Flask, the log line, the
request log or the metrics): a lower bound for that read on this stack.

wrk (`apt-get install wrk`) replays a file of requests signed just before each round, each
request once (bench/wrk_gate.lua splits the file between wrk's threads, so no nonce is sent
twice). Prints req/s, the share of bare Flask, p50/p99 latency, the server's CPU per
request, and every non-2xx answer (a benchmark of 401s would be worthless).

    python3 bench/wrk_gate.py [--seconds 5] [--rounds 3] [--connections 8] [--engines sqlite,postgres]

PostgreSQL: the server of --postgres (default LOYALTY_TEST_DATABASE_URL, else
postgresql://postgres@127.0.0.1:5432/postgres); its user must be allowed to create databases.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from api_gate import REPO, free_port, set_allowed_ips, signed_headers, worker_cpu_seconds  # noqa: E402

LUA = Path(__file__).resolve().parent / "wrk_gate.lua"
WORKERS, THREADS = 2, 4  # serve's defaults, and the bare app's

BARE_APP = '''
from flask import Flask, jsonify

app = Flask("bare")


@app.get("/healthz")
def healthz():
    return jsonify(status="ok")
'''

# server.py BIND [WORKERS [MODULE]]: MODULE's `app` (bare.py's, or bench/floor_app.py's).
BARE_SERVER = f'''
import importlib
import sys
from gunicorn.app.base import BaseApplication

app = importlib.import_module(sys.argv[3] if len(sys.argv) > 3 else "bare").app


class Server(BaseApplication):
    def load_config(self):
        self.cfg.set("bind", sys.argv[1])
        self.cfg.set("workers", int(sys.argv[2]) if len(sys.argv) > 2 else {WORKERS})
        self.cfg.set("threads", {THREADS})
        self.cfg.set("worker_class", "gthread")
        self.cfg.set("accesslog", None)
        self.cfg.set("timeout", 60)
        self.cfg.set("control_socket_disable", True)
        self.cfg.set("graceful_timeout", 10)

    def load(self):
        return app


Server().run()
'''


class Target:
    """One server under test and what it answers to."""

    def __init__(self, name: str, process: subprocess.Popen, port: int, workdir: Path):
        self.name, self.process, self.port, self.workdir = name, process, port, workdir
        self.base = f"http://127.0.0.1:{port}"
        self.creds: dict | None = None
        self.member_path = ""
        self.card_id = ""

    def wait_ready(self, seconds: float = 60) -> None:
        import requests

        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"{self.name} exited; see {self.workdir / 'server.log'}")
            try:
                if requests.get(self.base + "/healthz", timeout=5).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise SystemExit(f"{self.name} did not answer /healthz within {seconds:g} s; see {self.workdir / 'server.log'}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()


def start_bare(tmp: Path) -> Target:
    folder = tmp / "bare"
    folder.mkdir()
    (folder / "bare.py").write_text(BARE_APP)
    (folder / "server.py").write_text(BARE_SERVER)
    port = free_port()
    log = open(folder / "server.log", "wb")
    process = subprocess.Popen([sys.executable, "server.py", f"127.0.0.1:{port}"], cwd=folder,
                               stdout=log, stderr=subprocess.STDOUT)
    return Target("bare Flask", process, port, folder)


def start_floor(tmp: Path, portal: Target) -> Target:
    """bench/floor_app.py on the SQLite portal's database, under the bare app's settings."""
    folder = tmp / "floor"
    folder.mkdir()
    (folder / "server.py").write_text(BARE_SERVER)
    port = free_port()
    log = open(folder / "server.log", "wb")
    process = subprocess.Popen([sys.executable, "server.py", f"127.0.0.1:{port}", str(WORKERS), "floor_app"],
                               cwd=folder, env=floor_env(portal.workdir), stdout=log, stderr=subprocess.STDOUT)
    target = Target("floor", process, port, folder)
    target.creds, target.member_path = portal.creds, portal.member_path
    return target


def floor_env(data_dir: Path) -> dict:
    """bench/floor_app.py's environment: the SQLite portal's, with bench/ importable."""
    env = portal_env(data_dir, None)
    env["PYTHONPATH"] += f":{Path(__file__).resolve().parent}"
    return env


def portal_env(data_dir: Path, database_url: str | None) -> dict:
    env = {**os.environ, "LOYALTY_DATA_DIR": str(data_dir), "PYTHONPATH": f"{REPO}:{REPO / 'sdk'}",
           # every call counted against its key's limit, none refused during the runs
           "LOYALTY_RATE_LIMIT_TEST": "1000000", "LOYALTY_RATE_LIMIT_PROD": "1000000"}
    env.pop("LOYALTY_DATABASE_URL", None)
    if database_url:
        env["LOYALTY_DATABASE_URL"] = database_url
    return env


def start_portal(tmp: Path, engine: str, database_url: str | None) -> Target:
    data_dir = tmp / f"portal-{engine}"
    data_dir.mkdir()
    port = free_port()
    log = open(data_dir / "server.log", "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "portal.cli", "serve", "--init", "--port", str(port),
         "--workers", str(WORKERS), "--threads", str(THREADS)],
        env=portal_env(data_dir, database_url), cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    target = Target(f"portal ({engine})", process, port, data_dir)
    target.database_url = database_url
    return target


def prepare_portal(target: Target) -> None:
    """The demo partner, a member, and the demo's coffee card (no limit on its balance)."""
    import requests

    demo = subprocess.run([sys.executable, "-m", "portal.cli", "demo", "--json"], cwd=REPO, check=True,
                          env=portal_env(target.workdir, target.database_url), capture_output=True, text=True)
    target.creds = json.loads(demo.stdout)
    set_allowed_ips(portal_env(target.workdir, target.database_url))
    body = json.dumps({"email": f"bench-{secrets.token_hex(4)}@example.com"}).encode()
    headers = {**signed_headers("POST", "/v1/members", body, target.creds), "Content-Type": "application/json"}
    response = requests.post(target.base + "/v1/members", data=body, headers=headers, timeout=10)
    response.raise_for_status()
    target.member_path = f"/v1/members/{response.json()['id']}/stamps"
    balances = get_balances(target)
    target.card_id = next(card["card_id"] for card in balances if card["card_name"] == "Coffee card")


def get_balances(target: Target) -> list[dict]:
    import requests

    response = requests.get(target.base + target.member_path, timeout=10,
                            headers=signed_headers("GET", target.member_path, b"", target.creds))
    if response.status_code != 200:
        raise SystemExit(f"GET {target.member_path} on {target.name} answered {response.status_code}: "
                         f"{response.text[:200]}")
    return response.json()["data"]


def coffee_balance(target: Target) -> int:
    return next(card["balance"] for card in get_balances(target) if card["card_id"] == target.card_id)


# -- the requests wrk replays ----------------------------------------------------------------


def raw_request(target: Target, kind: str) -> bytes:
    """One raw HTTP/1.1 request; signed ones get a fresh nonce and timestamp."""
    host = f"127.0.0.1:{target.port}"
    if kind == "healthz":
        method, path, body, headers = "GET", "/healthz", b"", {}
    elif kind == "read":
        method, path, body = "GET", target.member_path, b""
        headers = signed_headers(method, path, body, target.creds)
    else:
        method, path = "POST", target.member_path
        body = json.dumps({"card_id": target.card_id, "count": 1}).encode()
        headers = {**signed_headers(method, path, body, target.creds), "Content-Type": "application/json"}
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", *(f"{k}: {v}" for k, v in headers.items())]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def write_requests(path: Path, target: Target, kind: str, count: int) -> None:
    with open(path, "wb") as out:
        for _ in range(count):
            request = raw_request(target, kind)
            out.write(b"%d\n" % len(request))
            out.write(request)


def run_wrk(target: Target, kind: str, *, seconds: float, connections: int, threads: int, budget: int,
            tmp: Path) -> dict:
    """One wrk run of `seconds` at `connections`; returns its figures (and the server's CPU)."""
    requests_file = tmp / "requests.bin"
    write_requests(requests_file, target, kind, budget)  # signed right before the round
    env = {**os.environ, "WRK_REQUESTS": str(requests_file), "WRK_THREADS": str(threads)}
    cpu_before = worker_cpu_seconds(target.process.pid)
    completed = subprocess.run(
        ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds:g}s", "--latency", "--timeout", "10s",
         "-s", str(LUA), target.base + "/"],
        env=env, capture_output=True, text=True, check=True)
    cpu = worker_cpu_seconds(target.process.pid) - cpu_before
    line = next((line for line in completed.stdout.splitlines() if line.startswith("WRK_JSON ")), None)
    if line is None:
        raise SystemExit(f"wrk printed no figures:\n{completed.stdout}\n{completed.stderr}")
    figures = json.loads(line[len("WRK_JSON "):])
    figures["rate"] = figures["requests"] / (figures["duration_us"] / 1e6)
    figures["cpu_ms"] = cpu * 1000 / max(figures["requests"], 1)
    figures["socket_errors"] = sum(figures[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts"))
    return figures


# -- PostgreSQL: a fresh database for the run ----------------------------------------------


def create_database(server_url: str) -> tuple[str, str]:
    """A new empty database on the server of `server_url`; returns (its URL, its name)."""
    import psycopg2

    name = f"bench_wrk_{secrets.token_hex(4)}"
    conn = psycopg2.connect(server_url)
    conn.autocommit = True
    with conn.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    parts = urlsplit(server_url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, "", "")), name


def drop_database(server_url: str, name: str) -> None:
    import psycopg2

    conn = psycopg2.connect(server_url)
    conn.autocommit = True
    with conn.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


# -- the run ---------------------------------------------------------------------------------

KINDS = (("bare", "healthz", "bare Flask /healthz"),
         ("portal", "healthz", "portal /healthz"),
         ("portal", "read", "signed read  GET /v1/members/{id}/stamps"),
         ("portal", "write", "signed write POST /v1/members/{id}/stamps"))
FLOOR = ("floor", "read", "floor: that read's SQL, bare WSGI")  # SQLite's rounds only


def kinds_of(engine: str) -> tuple:
    return KINDS + (FLOOR,) if engine == "sqlite" else KINDS


TARGETS = {"portal /healthz": 0.8, "signed read  GET /v1/members/{id}/stamps": 0.5,
           "signed write POST /v1/members/{id}/stamps": 0.2}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--engines", default="sqlite,postgres", help="comma-separated: sqlite, postgres")
    parser.add_argument("--postgres", default=None,
                        help="a PostgreSQL server URL whose user may create databases")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    server_url = args.postgres or os.environ.get("LOYALTY_TEST_DATABASE_URL") \
        or "postgresql://postgres@127.0.0.1:5432/postgres"

    tmp = Path(tempfile.mkdtemp(prefix="bench-wrk-"))
    started: list[Target] = []
    pg_name = None
    try:
        bare = start_bare(tmp)
        started.append(bare)
        portals = {}
        for engine in engines:
            url = None
            if engine == "postgres":
                url, pg_name = create_database(server_url)
            portals[engine] = start_portal(tmp, engine, url)
            started.append(portals[engine])
        for target in started:
            target.wait_ready()
        for target in portals.values():
            prepare_portal(target)
        floors = {}
        if "sqlite" in portals:
            floors["sqlite"] = start_floor(tmp, portals["sqlite"])
            started.append(floors["sqlite"])
            floors["sqlite"].wait_ready()
        balances_before = {engine: coffee_balance(t) for engine, t in portals.items()}

        # Enough requests that no wrk thread runs out: 2.5 times the best rate seen so far
        # (at least 2,000/s; the warm-up's rate is often low).
        best_rate = {}

        def budget(key) -> int:
            return int(max(best_rate.get(key, 4000), 2000) * args.seconds * 2.5) + 2000

        results: dict = {}
        writes_answered = {engine: 0 for engine in portals}
        write_runs = {engine: 0 for engine in portals}

        def measure(engine: str, server: str, kind: str, label: str, *, record: bool, seconds: float) -> None:
            target = bare if server == "bare" else floors[engine] if server == "floor" else portals[engine]
            key = (engine, label)
            figures = run_wrk(target, kind, seconds=seconds, connections=args.connections, threads=args.threads,
                              budget=budget(key), tmp=tmp)
            best_rate[key] = max(best_rate.get(key, 0), figures["rate"])
            if kind == "write" and server == "portal":
                writes_answered[engine] += figures["requests"] - figures["status_errors"]
                write_runs[engine] += 1
            if record:
                results.setdefault(key, []).append(figures)

        for engine in portals:  # warm-up: imports, connections, caches
            for server, kind, label in kinds_of(engine):
                measure(engine, server, kind, label, record=False, seconds=1)
        for _ in range(args.rounds):
            for engine in portals:
                for server, kind, label in kinds_of(engine):
                    measure(engine, server, kind, label, record=True, seconds=args.seconds)

        load = os.getloadavg()
        print(f"wrk -t{args.threads} -c{args.connections}, {args.rounds} alternating rounds x {args.seconds:g} s; "
              f"servers: gunicorn {WORKERS} workers x {THREADS} threads (gthread); "
              f"load average after the run {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs")
        for engine, target in portals.items():
            bare_rate = statistics.mean(f["rate"] for f in results[(engine, KINDS[0][2])])
            print(f"\n{engine}:")
            print(f"  {'request':<44}{'req/s':>8}{'share':>7}{'target':>8}{'p50 ms':>8}{'p99 ms':>8}"
                  f"{'max p99':>8}{'CPU ms':>8}{'non-2xx':>9}")
            for _, _, label in kinds_of(engine):
                runs = results[(engine, label)]
                rate = statistics.mean(f["rate"] for f in runs)
                p50 = statistics.median(f["p50_us"] for f in runs) / 1000
                p99 = statistics.median(f["p99_us"] for f in runs) / 1000
                p99_max = max(f["p99_us"] for f in runs) / 1000
                cpu = statistics.mean(f["cpu_ms"] for f in runs)
                bad = sum(f["status_errors"] for f in runs)
                socket_errors = sum(f["socket_errors"] for f in runs)
                target_share = TARGETS.get(label)
                mark = f">={target_share:.1f}" if target_share else ""
                print(f"  {label:<44}{rate:8.0f}{rate / bare_rate:7.2f}{mark:>8}{p50:8.1f}{p99:8.1f}{p99_max:8.1f}"
                      f"{cpu:8.2f}{bad:9d}" + (f"  socket errors: {socket_errors}" if socket_errors else "")
                      + ("  (a wrk thread ran out of requests)" if any(f["threads_ran_out"] for f in runs) else ""))
            added = coffee_balance(target) - balances_before[engine]
            # A request still in flight when wrk stops is applied but not counted: at most
            # one per connection and run.
            slack = args.connections * write_runs[engine]
            fits = writes_answered[engine] <= added <= writes_answered[engine] + slack
            print(f"  stamps added {added}; 2xx write answers counted by wrk {writes_answered[engine]} "
                  f"(+ at most {slack} in flight at the runs' ends)" + ("" if fits else "  MISMATCH"))
        print("\nshare: req/s over bare Flask's in the same rounds; p50/p99: median over rounds; "
              "CPU ms: the server's workers' CPU per request")
    finally:
        for target in started:
            target.stop()
        if pg_name:
            drop_database(server_url, pg_name)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
