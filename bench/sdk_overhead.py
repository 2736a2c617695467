"""What the SDK costs: signing one request, and a LoyaltyClient call against a raw
`requests.Session` call with precomputed headers to the same endpoint of the same server.

    python3 bench/sdk_overhead.py                 # starts its own server on a loopback port
    python3 bench/sdk_overhead.py --calls 2000
    python3 bench/sdk_overhead.py --base-url http://127.0.0.1:8000   # an existing server;
        # credentials from LOYALTY_APP_ID / LOYALTY_APP_SECRET / LOYALTY_API_KEY (every scope)

The raw baseline gets, for each call, headers signed before the timed loop (a nonce is
single-use, so one header set cannot be replayed); the SDK call signs, checks the scope
(cached), retries-wraps, decodes and builds the typed result itself. Raw and SDK calls
alternate (one by one by default, `--block N` for runs of N) so drift on a shared machine
hits both alike. Target: ratio ≤ 1.05.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from loyalty_sdk import LoyaltyClient, sign


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """`loyalty-portal serve` on a fresh data dir, with a demo partner."""

    def __init__(self, workers: int):
        self.dir = tempfile.TemporaryDirectory(prefix="sdk-bench-")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "LOYALTY_DATA_DIR": self.dir.name}
        self.env.pop("LOYALTY_DATABASE_URL", None)
        self.log = open(Path(self.dir.name) / "server.log", "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "portal.cli", "serve", "--init", "--port", str(self.port), "--workers", str(workers)],
            env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(self.url + "/healthz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise SystemExit("the server did not start; see " + str(Path(self.dir.name) / "server.log"))
            time.sleep(0.1)
        demo = subprocess.run([sys.executable, "-m", "portal.cli", "demo", "--json"], env=self.env,
                              capture_output=True, text=True, check=True)
        self.demo = json.loads(demo.stdout)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=15)
        self.log.close()
        self.dir.cleanup()


def median_signing_us(rounds: int = 200, batch: int = 100) -> float:
    """Median cost of one `sign()` of a POST with a small JSON body, in microseconds."""
    body = json.dumps({"card_id": "card_0123456789abcdef", "count": 3, "reference": "visit-42"}).encode()
    url = "https://loyalty.example.com/v1/members/mem_0123456789abcdef/stamps"
    args = dict(app_id="app_k3j9x0q2m5n8p1r4", app_secret="secret_Zq8fN2vXp4LrT6yBw1Kc9Hd3Mg5Js7Ae")
    for _ in range(1000):
        sign("POST", url, body, **args)
    per_call = []
    for _ in range(rounds):
        started = time.perf_counter_ns()
        for _ in range(batch):
            sign("POST", url, body, **args)
        per_call.append((time.perf_counter_ns() - started) / batch / 1000)
    return statistics.median(per_call)


def compare_calls(base_url: str, app_id: str, app_secret: str, api_key: str, calls: int, block: int,
                  member_id: str | None = None, timer=time.perf_counter) -> dict:
    """Median time (wall clock, or `timer`) of raw vs SDK calls to GET /v1/members/{id}/cashback,
    interleaved in blocks."""
    client = LoyaltyClient(app_id=app_id, app_secret=app_secret, api_key=api_key, base_url=base_url)
    if member_id is None:
        member_id = client.members.create(email=f"bench-{os.urandom(4).hex()}@example.com").id
        client.cashback.credit(member_id, amount=100)
    path = f"/v1/members/{member_id}/cashback"
    url = base_url + path
    session = requests.Session()
    # The leanest raw call: no per-request lookup of proxy variables or ~/.netrc (the SDK
    # does that lookup once per client), so the comparison does not flatter the SDK.
    session.trust_env = False
    authorization = "Bearer " + api_key

    def signed_headers(count: int) -> list[dict]:
        headers = []
        for _ in range(count):
            h = sign("GET", path, None, app_id=app_id, app_secret=app_secret)
            h["Authorization"] = authorization
            headers.append(h)
        return headers

    def raw_block(count: int) -> list[float]:
        prepared = signed_headers(count)  # outside the timed part
        times = []
        for headers in prepared:
            started = timer()
            response = session.get(url, headers=headers, timeout=30)
            response.json()
            times.append(timer() - started)
            assert response.status_code == 200, response.text
        return times

    def sdk_block(count: int) -> list[float]:
        times = []
        for _ in range(count):
            started = timer()
            client.cashback.balance(member_id)
            times.append(timer() - started)
        return times

    raw_block(50), sdk_block(50)  # warm-up: connections, caches
    raw: list[float] = []
    sdk: list[float] = []
    block_ratios: list[float] = []
    for index in range(max(1, calls // block)):
        # Alternate which goes first, so neither always follows the other's server-side work.
        if index % 2:
            sdk_times = sdk_block(block)
            raw_times = raw_block(block)
        else:
            raw_times = raw_block(block)
            sdk_times = sdk_block(block)
        raw += raw_times
        sdk += sdk_times
        block_ratios.append(statistics.median(sdk_times) / statistics.median(raw_times))
    client.close()
    session.close()
    return {"raw_ms": statistics.median(raw) * 1000, "sdk_ms": statistics.median(sdk) * 1000,
            "raw_p90_ms": statistics.quantiles(raw, n=10)[-1] * 1000,
            "sdk_p90_ms": statistics.quantiles(sdk, n=10)[-1] * 1000, "calls": len(raw),
            "paired_ratio": statistics.median(block_ratios)}


STUB_SERVER = r"""
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
KEY = json.dumps({"object": "api_key", "app_id": "app_k3j9x0q2m5n8p1r4", "mode": "test", "name": "stub",
                  "expires_at": None, "scopes": ["member_read", "member_write", "card_read", "claim_write",
                  "referral_read", "referral_write", "stamps_read", "stamps_write", "cashback_read",
                  "cashback_write"]}).encode()
BALANCE = json.dumps({"object": "cashback_balance", "member_id": "mem_stub", "balance": 100,
                      "currency": "EUR"}).encode()
class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    def log_message(self, *a): pass
    def do_GET(self):
        body = KEY if self.path == "/v1/key" else BALANCE
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
print("ready", flush=True)
server.serve_forever()
"""


def stub_overhead(calls: int, block: int) -> dict:
    """The same comparison against a stub that answers at once, in this process's CPU time:
    the client side alone, undisturbed by waiting on a busy machine's scheduler."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", STUB_SERVER, str(port)], stdout=subprocess.PIPE, text=True)
    try:
        proc.stdout.readline()
        return compare_calls(f"http://127.0.0.1:{port}", "app_k3j9x0q2m5n8p1r4",
                             "secret_Zq8fN2vXp4LrT6yBw1Kc9Hd3Mg5Js7Ae",
                             "test_sk_Qm4vN8xZ2pL6rT0yB3wK7cH1dG5jS9aE1Q4vv2", calls=calls, block=block,
                             member_id="mem_stub", timer=time.process_time)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=1000, help="timed calls of each kind (default 1000)")
    parser.add_argument("--block", type=int, default=1, help="calls per alternating block (default 1: strictly alternating)")
    parser.add_argument("--workers", type=int, default=1, help="server processes when starting our own")
    parser.add_argument("--base-url", help="bench an existing server (credentials from LOYALTY_* variables)")
    args = parser.parse_args()

    signing = median_signing_us()
    print(f"signing one request (sign(), POST with a 70-byte JSON body): median {signing:.1f} µs")

    server = None
    if args.base_url:
        base_url = args.base_url.rstrip("/")
        creds = (os.environ["LOYALTY_APP_ID"], os.environ["LOYALTY_APP_SECRET"], os.environ["LOYALTY_API_KEY"])
    else:
        server = Server(args.workers)
        base_url = server.url
        creds = (server.demo["app_id"], server.demo["app_secret"], server.demo["test_key"])
    try:
        result = compare_calls(base_url, *creds, calls=args.calls, block=args.block)
    finally:
        if server is not None:
            server.stop()

    stub = stub_overhead(args.calls, args.block)

    ratio = result["sdk_ms"] / result["raw_ms"]
    print(f"GET /v1/members/{{id}}/cashback, {result['calls']} calls each, interleaved in blocks of {args.block}:")
    print(f"  raw requests.Session, precomputed headers: median {result['raw_ms']:.3f} ms (p90 {result['raw_p90_ms']:.3f})")
    print(f"  LoyaltyClient.cashback.balance():          median {result['sdk_ms']:.3f} ms (p90 {result['sdk_p90_ms']:.3f})")
    print(f"  SDK per-call overhead: {(result['sdk_ms'] - result['raw_ms']) * 1000:+.0f} µs; "
          f"ratio SDK/raw {ratio:.3f} (target ≤ 1.05: {'met' if ratio <= 1.05 else 'NOT met'}); "
          f"median of per-block ratios {result['paired_ratio']:.3f}")
    print("the same against a stub server that answers at once, client CPU time per call:")
    print(f"  raw median {stub['raw_ms'] * 1000:.0f} µs, SDK median {stub['sdk_ms'] * 1000:.0f} µs: "
          f"the SDK adds {(stub['sdk_ms'] - stub['raw_ms']) * 1000:+.0f} µs of CPU per call")


if __name__ == "__main__":
    main()
