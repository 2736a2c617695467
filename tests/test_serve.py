"""`loyalty-portal serve` refuses an address it cannot use with one line, before announcing it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys


def test_serve_on_a_taken_port_says_so_in_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "LOYALTY_DATA_DIR": str(tmp_path)}
        env.pop("LOYALTY_DATABASE_URL", None)
        result = subprocess.run(
            [sys.executable, "-m", "portal.cli", "serve", "--init", "--port", str(port)],
            env=env, capture_output=True, text=True, timeout=60,
        )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1:] == [
        f"Error: cannot listen on 127.0.0.1:{port}: Address already in use (use --port to pick another)"
    ]
    assert "Loyalty portal on" not in result.stdout
    assert list(tmp_path.iterdir()) == []  # the failed start removed the database and secrets it made
