"""`loyalty-portal` commands, run in-process against a data dir of their own."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from portal import db
from portal.cli import main
from portal.credentials import APP_ID_RE, APP_SECRET_RE, parse_api_key


@pytest.fixture
def cli(tmp_path):
    """Run a command with LOYALTY_DATA_DIR pointing at a fresh dir."""
    runner = CliRunner()
    env = {"LOYALTY_DATA_DIR": str(tmp_path), "LOYALTY_DATABASE_URL": "", "LOYALTY_SIGNUP": "open",
           "LOYALTY_PASSWORD_HASHING": "fast"}

    def run(*args, stdin=None):
        return runner.invoke(main, list(args), input=stdin, env=env, catch_exceptions=False)

    yield run
    db.database.close()


def one_line_error(result) -> str:
    """The error of a failed command: one line on stderr after the line naming the
    database and data dir."""
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 2 and lines[0].startswith("Using database "), result.output
    return lines[1]


@pytest.fixture
def owner(cli):
    result = cli("create-user", "--email", "Owner@Shop.example", "--business", "Shop", "--password-stdin",
                 "--init", stdin="a long enough passphrase\n")
    assert result.exit_code == 0, result.output
    return "owner@shop.example"


@pytest.fixture
def app_id(cli, owner):
    result = cli("create-app", "--owner", owner, "--name", "Till", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["app_id"]


def test_migrate_twice_is_safe(cli):
    first = cli("migrate", "--init")
    assert first.exit_code == 0 and "Applied" in first.output
    second = cli("migrate")
    assert second.exit_code == 0 and "up to date" in second.output


def test_create_user_makes_an_account_that_can_log_in(cli, owner, tmp_path):
    from portal import create_app
    from portal.domain.accounts import authenticate

    app = create_app({"DATA_DIR": str(tmp_path), "PASSWORD_HASHING": "fast"})
    with app.test_request_context():
        assert authenticate(owner, "a long enough passphrase") is not None


def test_create_user_twice_fails_with_one_clear_line(cli, owner):
    result = cli("create-user", "--email", owner, "--business", "Shop", "--password-stdin",
                 stdin="a long enough passphrase\n")
    assert result.exit_code != 0
    assert "already exists" in one_line_error(result)


def test_create_user_with_a_short_password_fails_with_one_clear_line(cli):
    result = cli("create-user", "--email", "x@shop.example", "--business", "Shop", "--password-stdin", "--init",
                 stdin="short\n")
    assert result.exit_code != 0 and "at least 10 characters" in one_line_error(result)


def test_create_app_json_prints_app_id_and_secret(cli, owner):
    result = cli("create-app", "--owner", owner, "--name", "Till", "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert set(data) == {"app_id", "app_secret"}
    assert APP_ID_RE.match(data["app_id"]) and APP_SECRET_RE.match(data["app_secret"])


def test_create_app_for_an_unknown_owner_fails_with_one_clear_line(cli):
    result = cli("create-app", "--owner", "nobody@shop.example", "--name", "Till", "--json", "--init")
    assert result.exit_code != 0 and "no user with email" in one_line_error(result)


def test_create_key_json_prints_the_key_mode_and_scopes(cli, app_id):
    result = cli("create-key", "--app", app_id, "--mode", "prod", "--scope", "stamps_write",
                 "--scope", "member_read", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == {"api_key", "mode", "scopes"}
    assert parse_api_key(data["api_key"]) == "prod" and data["mode"] == "prod"
    assert data["scopes"] == ["member_read", "stamps_write"]


@pytest.mark.parametrize("args, message", [
    (["--app", "app_0000000000000000", "--mode", "test", "--scope", "card_read"], "no application with App ID"),
    (["--mode", "test", "--scope", "admin"], "nknown scope admin"),
    (["--mode", "live", "--scope", "card_read"], "'live' is not one of 'test', 'prod'"),
])
def test_create_key_with_bad_input_fails_with_one_clear_line(cli, app_id, args, message):
    if "--app" not in args:
        args = ["--app", app_id, *args]
    result = cli("create-key", *args, "--json")
    assert result.exit_code != 0
    error = result.stderr.strip().splitlines()[-1]
    assert message in error
    assert "Traceback" not in result.output


def test_arguments_and_passwords_that_are_not_utf8_fail_with_one_clear_line(tmp_path):
    """Bytes in another encoding reach Python as lone surrogates, which no database stores
    (and a password hash cannot take): one line, exit status non-zero, nothing created."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "LOYALTY_DATA_DIR": str(tmp_path), "LOYALTY_SIGNUP": "open", "LOYALTY_PASSWORD_HASHING": "fast"}
    env.pop("LOYALTY_DATABASE_URL", None)

    def run(*args, stdin=b"a long enough passphrase\n"):
        return subprocess.run([sys.executable, "-m", "portal.cli", *args], env=env, input=stdin,
                              capture_output=True, timeout=60)

    for args in ([b"create-user", b"--email", b"a@example.com", b"--business", b"Caf\xe9", b"--password-stdin"],
                 [b"create-user", b"--email", b"caf\xe9@example.com", b"--business", b"Shop", b"--password-stdin"],
                 [b"invite", b"\xff@example.com"],
                 [b"create-app", b"--owner", b"a@example.com", b"--name", b"\xed\xa0\x80"]):
        result = run(*args, b"--init") if args[0] != b"invite" else run(*args)
        assert result.returncode == 2, result
        lines = result.stderr.decode().strip().splitlines()
        assert len(lines) == 1 and "unpaired surrogate" in lines[0] and "nothing was done" in lines[0], lines
    result = run("create-user", "--email", "a@example.com", "--business", "Shop", "--password-stdin", "--init",
                 stdin=b"caf\xe9 latin-1 passphrase\n")
    assert result.returncode == 1
    assert result.stderr.decode().strip().splitlines()[1:] == [
        "Error: The password holds an unpaired surrogate (U+DCE9); use ordinary text."]
    assert b"Traceback" not in result.stdout + result.stderr
    # Nothing was created: the same email signs up fine afterwards.
    assert run("create-user", "--email", "a@example.com", "--business", "Shop", "--password-stdin",
               "--init").returncode == 0
