"""`loyalty-sdk whoami` and `loyalty-sdk curl`, run as a partner would, against the live server."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CURL = shutil.which("curl")


def _command() -> list[str]:
    script = Path(sys.executable).with_name("loyalty-sdk")
    if script.exists():
        return [str(script)]
    found = shutil.which("loyalty-sdk")
    return [found] if found else [sys.executable, "-m", "loyalty_sdk.cli"]


@pytest.fixture
def sdk_env(live_server, demo) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOYALTY_")}
    env.update(LOYALTY_APP_ID=demo["app_id"], LOYALTY_APP_SECRET=demo["app_secret"],
               LOYALTY_API_KEY=demo["test_key"], LOYALTY_BASE_URL=live_server.url)
    return env


def run_cli(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([*_command(), *args], env=env, capture_output=True, text=True, timeout=60)


def run_printed_curl(command: str) -> tuple[int, str]:
    """Run the printed command in a shell (as a partner pastes it); return (HTTP status, body)."""
    result = subprocess.run(["sh", "-c", command.strip() + " -w '\\n%{http_code}'"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    body, _, status = result.stdout.rpartition("\n")
    return int(status), body


def test_whoami_prints_app_mode_scopes_and_expiry(sdk_env, demo):
    result = run_cli("whoami", env=sdk_env)
    assert result.returncode == 0, result.stderr
    assert demo["app_id"] in result.stdout
    assert "test" in result.stdout and "stamps_write" in result.stdout and "never" in result.stdout
    assert demo["test_key"] not in result.stdout


def test_whoami_json(sdk_env, demo):
    result = run_cli("whoami", "--json", env=sdk_env)
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["app_id"] == demo["app_id"] and info["mode"] == "test" and len(info["scopes"]) == 10


def test_whoami_without_credentials_names_the_missing_variables(sdk_env):
    env = {k: v for k, v in sdk_env.items() if k not in ("LOYALTY_API_KEY", "LOYALTY_BASE_URL")}
    result = run_cli("whoami", env=env)
    assert result.returncode == 2
    assert "LOYALTY_API_KEY" in result.stderr and "LOYALTY_BASE_URL" in result.stderr
    assert "Traceback" not in result.stderr


def test_whoami_with_a_refused_key_exits_1_with_the_servers_reason(sdk_env):
    env = dict(sdk_env, LOYALTY_APP_SECRET="secret_" + "B" * 32)
    result = run_cli("whoami", env=env)
    assert result.returncode == 1
    assert "invalid_signature" in result.stderr and "req_" in result.stderr and "Traceback" not in result.stderr


def test_help_describes_both_commands(sdk_env):
    result = run_cli("--help", env=sdk_env)
    assert result.returncode == 0 and "whoami" in result.stdout and "curl" in result.stdout
    assert run_cli("curl", "--help", env=sdk_env).returncode == 0


@pytest.mark.skipif(CURL is None, reason="curl is not installed (apt-get install curl)")
def test_the_printed_curl_command_for_a_get_is_answered_200(sdk_env, demo):
    result = run_cli("curl", "GET", "/v1/key", env=sdk_env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("curl ")
    status, body = run_printed_curl(result.stdout)
    assert status == 200, body
    assert json.loads(body)["app_id"] == demo["app_id"]


@pytest.mark.skipif(CURL is None, reason="curl is not installed (apt-get install curl)")
def test_the_printed_curl_command_for_a_post_with_data_is_answered(sdk_env, make_client):
    email = f"curl-{secrets.token_hex(4)}@example.com"
    result = run_cli("curl", "POST", "/v1/members", "--data", json.dumps({"email": email, "name": "Zoë"}),
                     env=sdk_env)
    assert result.returncode == 0, result.stderr
    status, body = run_printed_curl(result.stdout)
    assert status == 201, body
    assert json.loads(body)["name"] == "Zoë"
    assert make_client().members.validate(email=email).valid is True


@pytest.mark.skipif(CURL is None, reason="curl is not installed (apt-get install curl)")
def test_the_printed_curl_command_with_an_encoded_query_is_answered_200(sdk_env):
    result = run_cli("curl", "get", "/v1/members/validate?email=ana%2Bvip%40example.com", env=sdk_env)
    assert result.returncode == 0, result.stderr
    status, body = run_printed_curl(result.stdout)
    assert status == 200, body
    assert json.loads(body)["valid"] is False


def test_curl_refuses_data_that_is_not_a_json_object(sdk_env):
    result = run_cli("curl", "POST", "/v1/members", "--data", "{email: nope}", env=sdk_env)
    assert result.returncode == 2 and "not valid JSON" in result.stderr
