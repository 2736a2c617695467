"""`loyalty-sdk whoami` and `loyalty-sdk curl`, run as a partner would, against the live server."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import secrets
import shutil
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from tests.sdk.proxy import FaultProxy

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


def run_printed_curl(command: str, sdk_env: dict, **env_changes) -> tuple[int, str]:
    """Run the printed command with bash (as a partner pastes it into the shell where the
    LOYALTY_ variables are set); return (HTTP status, body)."""
    env = {k: v for k, v in {**sdk_env, **env_changes}.items() if v is not None}
    result = subprocess.run(["bash", "-c", command.strip() + " -w '\\n%{http_code}'"], capture_output=True,
                            text=True, timeout=60, env=env)
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
    status, body = run_printed_curl(result.stdout, sdk_env)
    assert status == 200, body
    assert json.loads(body)["app_id"] == demo["app_id"]


@pytest.mark.skipif(CURL is None, reason="curl is not installed (apt-get install curl)")
def test_the_printed_curl_command_for_a_post_with_data_is_answered(sdk_env, make_client):
    email = f"curl-{secrets.token_hex(4)}@example.com"
    result = run_cli("curl", "POST", "/v1/members", "--data", json.dumps({"email": email, "name": "Zoë"}),
                     env=sdk_env)
    assert result.returncode == 0, result.stderr
    status, body = run_printed_curl(result.stdout, sdk_env)
    assert status == 201, body
    assert json.loads(body)["name"] == "Zoë"
    assert make_client().members.validate(email=email).valid is True


@pytest.mark.skipif(CURL is None, reason="curl is not installed (apt-get install curl)")
def test_the_printed_curl_command_with_an_encoded_query_is_answered_200(sdk_env):
    result = run_cli("curl", "get", "/v1/members/validate?email=ana%2Bvip%40example.com", env=sdk_env)
    assert result.returncode == 0, result.stderr
    status, body = run_printed_curl(result.stdout, sdk_env)
    assert status == 200, body
    assert json.loads(body)["valid"] is False


def test_curl_refuses_data_that_is_not_a_json_object(sdk_env):
    result = run_cli("curl", "POST", "/v1/members", "--data", "{email: nope}", env=sdk_env)
    assert result.returncode == 2 and "not valid JSON" in result.stderr


def test_the_printed_curl_command_holds_neither_the_key_nor_the_secret(sdk_env, demo):
    result = run_cli("curl", "POST", "/v1/members", "--data", '{"email": "ana@example.com"}', env=sdk_env)
    assert result.returncode == 0, result.stderr
    command = result.stdout
    assert demo["test_key"] not in command and demo["test_key"][8:] not in command
    assert demo["app_secret"] not in command and demo["app_secret"][7:] not in command
    assert '-H "Authorization: Bearer $LOYALTY_API_KEY"' in command
    headers = [h.split(":", 1)[0] for h in re.findall(r"-H '([^']+)'", command)]
    assert sorted(headers) == ["Content-Type", "Idempotency-Key", "X-Loyalty-App-Id", "X-Loyalty-Nonce",
                               "X-Loyalty-Signature", "X-Loyalty-Timestamp"]
    assert "LOYALTY_API_KEY" in result.stderr


@pytest.mark.skipif(CURL is None, reason="curl is not installed (apt-get install curl)")
def test_the_printed_curl_command_needs_only_the_key_in_the_shell_and_fails_without_it(sdk_env, demo):
    printed = run_cli("curl", "GET", "/v1/key", env=sdk_env).stdout
    only_the_key = {k: v for k, v in sdk_env.items() if not k.startswith("LOYALTY_")}
    status, body = run_printed_curl(printed, only_the_key, LOYALTY_API_KEY=demo["test_key"])
    assert status == 200, body
    printed = run_cli("curl", "GET", "/v1/key", env=sdk_env).stdout
    status, body = run_printed_curl(printed, only_the_key)
    assert status == 401, body


def _through_a_closing_pipe(sdk_env, pipeline: str, *args: str) -> subprocess.CompletedProcess:
    """`loyalty-sdk ARGS | PIPELINE` in bash; stderr carries the CLI's status as `status=N`."""
    script = f'set -o pipefail; "$@" | {pipeline}; echo "status=${{PIPESTATUS[0]}}" >&2'
    return subprocess.run(["bash", "-c", script, "bash", *_command(), *args], env=sdk_env, capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize("args, status", [
    (("whoami",), 141), (("whoami", "--json"), 141), (("curl", "GET", "/v1/key"), 141),
    (("--help",), 0),  # argparse itself ignores a failed write of its help
])
def test_output_into_a_pipe_that_closes_first_ends_quietly(sdk_env, args, status):
    """`true` exits before the CLI writes a byte: the write meets a closed pipe."""
    result = _through_a_closing_pipe(sdk_env, "true", *args)
    assert "Traceback" not in result.stderr and "BrokenPipeError" not in result.stderr, result.stderr
    assert "Exception ignored" not in result.stderr
    assert f"status={status}\n" in result.stderr


def test_whoami_piped_into_head_prints_its_first_line_and_nothing_else(sdk_env, demo):
    result = _through_a_closing_pipe(sdk_env, "head -n 1", "whoami")
    assert result.stdout == f"app       {demo['app_id']}\n"
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr
    assert re.search(r"status=(0|141)\n", result.stderr)


# -- a platform behind a private certificate authority (sdk/README.md) -----------------------


def _private_ca(folder: Path) -> tuple[Path, ssl.SSLContext]:
    """A CA of our own and a server certificate for 127.0.0.1 it signed: (the CA's PEM, a
    server context presenting that certificate)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test Loyalty Private CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    server = (x509.CertificateBuilder()
              .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])).issuer_name(ca_name)
              .public_key(server_key.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
              .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                             critical=False)
              .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
              .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
              .sign(ca_key, hashes.SHA256()))
    ca_pem = folder / "loyalty-ca.pem"
    ca_pem.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    chain, key = folder / "server.pem", folder / "server.key"
    chain.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(server_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(chain, key)
    return ca_pem, context


def test_whoami_trusts_a_private_ca_named_by_requests_ca_bundle(sdk_env, live_server, demo, tmp_path):
    """The README's procedure: `export REQUESTS_CA_BUNDLE=…/loyalty-ca.pem`, then the SDK
    reaches a platform whose certificate only that CA vouches for."""
    ca_pem, context = _private_ca(tmp_path)
    with FaultProxy(live_server.url, tls=context) as https:
        env = dict(sdk_env, LOYALTY_BASE_URL=https.url)
        env.pop("REQUESTS_CA_BUNDLE", None)
        env.pop("CURL_CA_BUNDLE", None)
        refused = run_cli("whoami", env=env)
        trusted = run_cli("whoami", env=dict(env, REQUESTS_CA_BUNDLE=str(ca_pem)))
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "TLS certificate is not trusted (unable to get local issuer certificate)" in refused.stderr
    assert "set REQUESTS_CA_BUNDLE" in refused.stderr
    assert trusted.returncode == 0, trusted.stderr
    assert demo["app_id"] in trusted.stdout and https.url in trusted.stdout
