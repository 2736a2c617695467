"""Instructions per request inside a gunicorn worker, counted by callgrind. Prints figures; asserts nothing.

`bench/wrk_gate.py`'s shares move with the machine's other load (bare Flask alone varied
from 2,800 to 8,000 req/s between sessions on the same kind of machine); a count of
instructions does not. This runs each server under valgrind's callgrind with counting
off, sends 100 requests to warm it up, counts the worker's instructions over the next N
requests (one keep-alive connection, one request at a time) and prints them per request:

- bare Flask `/healthz` under the same gunicorn settings as `loyalty-portal serve`
  (gthread, 4 threads; one worker, so one process is counted): the stack's own cost;
- `loyalty-portal serve` on SQLite (a fresh data dir, the demo's keys with an allowed-IP
  list and a raised rate limit, as in wrk_gate): `/healthz`, a signed read
  (`GET /v1/members/{id}/stamps`) and a signed write (`POST /v1/members/{id}/stamps`);
- bench/floor_app.py on that portal's database, under the bare app's settings: its
  `/healthz` (a WSGI function and nothing else: gunicorn's own cost per request) and the
  floor under the signed read (the read's statements, hashes and JSON without Flask, the
  log line, the request log or the metrics).

Everything the worker does counts: gunicorn's parsing and threads, the app, SQLite, the
request log's writer thread (whose fixed cost per write, every 0.5 s, is shared here by
fewer requests than at full load). Not what the kernel does for it, nor the CPU's caches:
a request with more instructions also misses the caches more, so wrk's shares are lower
than the ratios printed here.

    apt-get install valgrind
    python3 bench/instructions.py [--requests 300]

Under valgrind the servers run some 50 times slower: a run takes about three minutes.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from api_gate import REPO, free_port, signed_headers  # noqa: E402
from wrk_gate import BARE_APP, BARE_SERVER, THREADS, Target, floor_env, portal_env, prepare_portal  # noqa: E402

KINDS = ("healthz", "read", "write")


def under_callgrind(command: list[str], out_dir: Path) -> list[str]:
    return ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--trace-children=yes",
            f"--callgrind-out-file={out_dir}/callgrind.%p", *command]


def start(name: str, command, cwd: Path, env: dict | None, folder: Path) -> Target:
    """`command(port)`: the server's command line, listening on `port`."""
    port = free_port()
    log = open(folder / "server.log", "wb")
    process = subprocess.Popen(under_callgrind(command(port), folder), cwd=cwd, env=env, stdout=log,
                               stderr=subprocess.STDOUT)
    target = Target(name, process, port, folder)
    target.database_url = None
    target.wait_ready(seconds=600)  # valgrind starts Python slowly
    return target


def worker_pids(master: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == master:
                    pids.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return pids


def count(target: Target, kind: str, requests_n: int) -> int:
    """The workers' instructions over `requests_n` requests of `kind`, per request."""
    import requests

    session = requests.Session()

    def send():
        if kind == "healthz":
            response = session.get(target.base + "/healthz", timeout=60)
        elif kind == "read":
            response = session.get(target.base + target.member_path, timeout=60,
                                   headers=signed_headers("GET", target.member_path, b"", target.creds))
        else:
            body = json.dumps({"card_id": target.card_id, "count": 1}).encode()
            response = session.post(target.base + target.member_path, data=body, timeout=60, headers={
                **signed_headers("POST", target.member_path, body, target.creds), "Content-Type": "application/json"})
        if response.status_code >= 300:
            raise SystemExit(f"{target.name} answered {response.status_code} to a {kind}: {response.text[:200]}")

    for _ in range(100):
        send()
    workers = worker_pids(target.process.pid)
    for pid in workers:  # what was counted so far goes to a dump of its own, thrown away
        subprocess.run(["callgrind_control", "--dump", str(pid)], capture_output=True, check=True)
    _drop_dumps(target.workdir)
    for pid in workers:
        subprocess.run(["callgrind_control", "--instr=on", str(pid)], capture_output=True, check=True)
    for _ in range(requests_n):
        send()
    for pid in workers:
        subprocess.run(["callgrind_control", "--instr=off", str(pid)], capture_output=True, check=True)
        subprocess.run(["callgrind_control", "--dump", str(pid)], capture_output=True, check=True)
    total = sum(_total(path) for path in target.workdir.glob("callgrind.*.*"))
    _drop_dumps(target.workdir)
    return total // requests_n


def _total(dump: Path) -> int:
    """The instructions a dump counted (its `totals:` line, or `summary:`)."""
    lines = dump.read_text(errors="replace").splitlines()
    for prefix in ("totals:", "summary:"):
        for line in lines:
            if line.startswith(prefix):
                return int(line.split()[1])
    return 0


def _drop_dumps(folder: Path) -> None:
    for path in folder.glob("callgrind.*.*"):  # callgrind.<pid>.<n>: one per --dump
        path.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="requests counted per kind")
    args = parser.parse_args()
    for tool in ("valgrind", "callgrind_control"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (apt-get install valgrind)")
    python = str(Path(sys.executable).resolve())  # the interpreter itself, not a shim valgrind would trace instead
    tmp = Path(tempfile.mkdtemp(prefix="bench-instructions-"))
    started = []
    try:
        bare_dir = tmp / "bare"
        bare_dir.mkdir()
        (bare_dir / "bare.py").write_text(BARE_APP)
        (bare_dir / "server.py").write_text(BARE_SERVER)
        bare = start("bare", lambda port: [python, "server.py", f"127.0.0.1:{port}", "1"], bare_dir, None, bare_dir)
        started.append(bare)
        data_dir = tmp / "portal"
        data_dir.mkdir()
        env = portal_env(data_dir, None)
        subprocess.run([python, "-m", "portal.cli", "migrate", "--init"], env=env, cwd=REPO, check=True,
                       capture_output=True)
        portal = start("portal", lambda port: [python, "-m", "portal.cli", "serve", "--port", str(port),
                                               "--workers", "1", "--threads", str(THREADS), "--no-worker"],
                       REPO, env, data_dir)
        started.append(portal)
        prepare_portal(portal)
        floor_dir = tmp / "floor"
        floor_dir.mkdir()
        (floor_dir / "server.py").write_text(BARE_SERVER)
        floor = start("floor", lambda port: [python, "server.py", f"127.0.0.1:{port}", "1", "floor_app"],
                      floor_dir, floor_env(data_dir), floor_dir)
        started.append(floor)
        floor.creds, floor.member_path = portal.creds, portal.member_path

        figures = {("bare", "healthz"): count(bare, "healthz", args.requests)}
        for kind in KINDS:
            figures[("portal", kind)] = count(portal, kind, args.requests)
        for kind in ("healthz", "read"):
            figures[("floor", kind)] = count(floor, kind, args.requests)
        base = figures[("bare", "healthz")]
        print(f"instructions per request in one gunicorn worker (gthread, {THREADS} threads), {args.requests} requests each, "
              "one at a time on one keep-alive connection; SQLite")
        print(f"  {'request':<44}{'instructions':>14}{'x bare':>8}")
        labels = {("bare", "healthz"): "bare Flask /healthz", ("portal", "healthz"): "portal /healthz",
                  ("portal", "read"): "signed read  GET /v1/members/{id}/stamps",
                  ("portal", "write"): "signed write POST /v1/members/{id}/stamps",
                  ("floor", "healthz"): "bare WSGI /healthz (gunicorn's own cost)",
                  ("floor", "read"): "floor: that read's SQL, bare WSGI"}
        for key, label in labels.items():
            print(f"  {label:<44}{figures[key]:>14,}{figures[key] / base:8.2f}")
    finally:
        for target in started:
            target.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
