"""docs/production.md's service set-up, run as written against a temporary folder: the
env file it shows (a database URL with `&` in it), `migrate --init` and `check` with
`--env-file`, then the unit's ExecStart under that file's settings, answering /readyz.

What cannot run here is skipped and said: useradd, the venv, systemctl (paths under
/var/lib, /etc and /opt become folders of tmp_path; the binary becomes this checkout's CLI).
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import requests
from cryptography.fernet import Fernet

from portal.config import read_env_file
from tests.conftest import free_port

REPO = Path(__file__).resolve().parent.parent
GUIDE = REPO / "docs" / "production.md"
BINARY = "/opt/loyalty/venv/bin/loyalty-portal"


def code_blocks(text: str) -> list[str]:
    return re.findall(r"^```\w*\n(.*?)^```", text, flags=re.S | re.M)


def block_with(text: str, needle: str) -> str:
    found = [block for block in code_blocks(text) if needle in block]
    assert len(found) == 1, f"one code block of docs/production.md should hold {needle!r}"
    return found[0]


def test_the_guides_service_set_up_runs_as_written(tmp_path, postgres_databases):
    guide = GUIDE.read_text()
    steps = block_with(guide, "useradd --system")
    env_block = block_with(guide, "LOYALTY_DATA_DIR=/var/lib/loyalty")
    exec_start = re.search(r"^ExecStart=(.+)$", block_with(guide, "[Service]"), flags=re.M).group(1)
    assert "Wants=network-online.target" in block_with(guide, "[Service]")

    data_dir, etc = tmp_path / "var-lib-loyalty", tmp_path / "etc-loyalty"
    # install -d -o loyalty -g loyalty -m 0700 /var/lib/loyalty; install -m 0600 /dev/null /etc/loyalty/env
    assert "install -d -o loyalty -g loyalty -m 0700 /var/lib/loyalty" in steps
    assert "install -o loyalty -g loyalty -m 0600 /dev/null /etc/loyalty/env" in steps
    data_dir.mkdir(mode=0o700)
    etc.mkdir()
    env_file = etc / "env"
    env_file.touch(mode=0o600)

    # editor /etc/loyalty/env: the guide's lines, with this machine's database and real secrets.
    url = postgres_databases.create_empty()
    fills = {"LOYALTY_SECRET_KEY": secrets.token_urlsafe(48), "LOYALTY_KEY_PEPPER": secrets.token_urlsafe(32),
             "LOYALTY_ENCRYPTION_KEY": Fernet.generate_key().decode()}
    lines = []
    for line in env_block.strip().splitlines():
        name, _, value = line.partition("=")
        if name == "LOYALTY_DATABASE_URL":
            assert "&" in value  # the guide's own example has a query with &
            value = url + "?" + value.split("?", 1)[1].replace("sslmode=require", "sslmode=prefer")
        value = fills.get(name, value).replace("/var/lib/loyalty", str(data_dir))
        lines.append(f"{name}={value}")
    env_file.write_text("\n".join(lines) + "\n")
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600

    base = {k: v for k, v in os.environ.items() if not k.startswith("LOYALTY_")}
    base["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "sdk")])
    try:
        commands = [line for line in steps.splitlines() if "loyalty-portal --env-file" in line]
        assert [c.split()[-1] for c in commands] == ["--init", "check"]
        for command in commands:
            args = shlex.split(command)
            args = args[args.index(BINARY) + 1:]  # `sudo -u loyalty` dropped: one user here
            args = [str(env_file) if a == "/etc/loyalty/env" else a for a in args]
            done = subprocess.run([sys.executable, "-m", "portal.cli", *args], cwd=tmp_path, env=base,
                                  capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, (command, done.stderr)
        assert done.stdout.startswith("OK: database answers, schema current")
        assert list(data_dir.iterdir()) == []  # every secret came from the env file

        # systemctl enable --now loyalty: ExecStart with EnvironmentFile's settings, on a free port.
        port = free_port()
        args = shlex.split(exec_start)
        assert args[0] == BINARY
        args = [str(port) if a == "8000" else ("1" if a == "4" else a) for a in args[1:]]
        service_env = {**base, **read_env_file(env_file)}
        with open(tmp_path / "journal", "wb") as journal:
            proc = subprocess.Popen([sys.executable, "-m", "portal.cli", *args], cwd=data_dir, env=service_env,
                                    stdout=journal, stderr=subprocess.STDOUT, start_new_session=True)
            try:
                ready = None
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline and proc.poll() is None:
                    try:
                        ready = requests.get(f"http://127.0.0.1:{port}/readyz", timeout=1)
                        break
                    except requests.ConnectionError:
                        time.sleep(0.1)
                assert ready is not None, (tmp_path / "journal").read_text()
                assert ready.status_code == 200 and ready.json() == {"status": "ready"}
            finally:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=30)
        journal_lines = (tmp_path / "journal").read_text().splitlines()
        assert "INFO portal.cli: Using database postgresql://" in journal_lines[0]
    finally:
        postgres_databases.drop(url)
