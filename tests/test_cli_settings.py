"""The CLI never quietly uses the wrong database: the real `loyalty-portal` in a subprocess.

Every command names its database (password masked) and data dir on its first stderr line;
`--env-file` reads the systemd EnvironmentFile format; a data dir, database or server
secret that does not exist yet is created only with `--init` (or by serve/migrate/demo on
the quick start's untouched defaults); a failed command leaves nothing behind;
`loyalty-portal check` says whether the settings fit the database.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

REPO = Path(__file__).resolve().parent.parent
PASSWORD = "a long enough passphrase\n"


def loyalty(*args, cwd: Path, env: dict | None = None, stdin: str | None = None) -> subprocess.CompletedProcess:
    """`loyalty-portal ARGS` with no LOYALTY_* variable but those in `env`."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("LOYALTY_")}
    base["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "sdk"), base.get("PYTHONPATH", "")])
    base["LOYALTY_PASSWORD_HASHING"] = "fast"
    return subprocess.run([sys.executable, "-m", "portal.cli", *args], cwd=cwd, env={**base, **(env or {})},
                          input=stdin, capture_output=True, text=True, timeout=60)


def stderr_lines(result) -> list[str]:
    return result.stderr.strip().splitlines()


def test_every_command_names_its_database_and_data_dir_on_its_first_line(tmp_path):
    data = tmp_path / "data"
    env = {"LOYALTY_DATA_DIR": str(data)}
    assert loyalty("migrate", "--init", cwd=tmp_path, env=env).returncode == 0
    created = loyalty("create-user", "--email", "o@shop.example", "--business", "Shop", "--password-stdin",
                      cwd=tmp_path, env=env, stdin=PASSWORD)
    assert created.returncode == 0, created.stderr
    made = loyalty("create-app", "--owner", "o@shop.example", "--name", "Till", "--json", cwd=tmp_path, env=env)
    for result in (created, made):
        assert stderr_lines(result)[0] == f"Using database sqlite:///{data / 'loyalty.db'}, data dir {data}"
    assert set(json.loads(made.stdout)) == {"app_id", "app_secret"}  # stdout stays pure JSON


def test_the_database_password_is_masked_on_the_first_line(tmp_path):
    tmp_path.joinpath("data").mkdir()
    env = {"LOYALTY_DATA_DIR": str(tmp_path / "data"),
           "LOYALTY_DATABASE_URL": "postgresql://loyalty:hunter2-s3cret@127.0.0.1:1/loyalty?sslmode=disable"}
    result = loyalty("migrate", cwd=tmp_path, env=env)
    assert result.returncode == 1
    lines = stderr_lines(result)
    assert lines[0] == (f"Using database postgresql://loyalty:***@127.0.0.1:1/loyalty?sslmode=disable, "
                        f"data dir {tmp_path / 'data'}")
    assert len(lines) == 2 and lines[1].startswith("Error: cannot reach the database")
    assert "hunter2" not in result.stdout + result.stderr


def test_rotating_in_a_folder_that_is_not_the_data_dir_creates_nothing_and_fails(tmp_path):
    """The operator's trap: in the wrong folder, without the service's environment."""
    result = loyalty("rotate-encryption-key", cwd=tmp_path)
    assert result.returncode == 1
    assert "does not exist, so nothing was done" in stderr_lines(result)[1]
    assert "Re-encrypted" not in result.stdout
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", [["migrate"], ["demo"], ["create-user", "--email", "o@shop.example",
                                                            "--business", "Shop", "--password-stdin"],
                                     ["check"], ["invite", "a@shop.example"]])
def test_a_configured_data_dir_that_does_not_exist_needs_init(tmp_path, command):
    env = {"LOYALTY_DATA_DIR": str(tmp_path / "missing")}
    result = loyalty(*command, cwd=tmp_path, env=env, stdin=PASSWORD)
    assert result.returncode == 1
    hint = "run `loyalty-portal migrate --init` first" if command == ["check"] else "pass --init"
    assert stderr_lines(result)[1] == (
        f"Error: data dir {tmp_path / 'missing'} does not exist, so nothing was done. Check LOYALTY_DATA_DIR / "
        f"LOYALTY_DATABASE_URL (or --env-file), or {hint} to create it")
    assert list(tmp_path.iterdir()) == []


def test_an_existing_data_dir_without_a_database_needs_init_and_init_creates_it_private(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    env = {"LOYALTY_DATA_DIR": str(data)}
    refused = loyalty("migrate", cwd=tmp_path, env=env)
    assert refused.returncode == 1 and "database sqlite:///" in refused.stderr and "--init" in refused.stderr
    assert list(data.iterdir()) == []
    done = loyalty("migrate", "--init", cwd=tmp_path, env=env)
    assert done.returncode == 0 and "Applied" in done.stdout
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    for path in data.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
    assert loyalty("migrate", cwd=tmp_path, env=env).stdout.strip() == "Database is up to date."


def test_an_empty_postgresql_database_needs_init(tmp_path, postgres_databases):
    url = postgres_databases.create_empty()
    try:
        env = {"LOYALTY_DATA_DIR": str(tmp_path), "LOYALTY_DATABASE_URL": url}
        refused = loyalty("create-user", "--email", "o@shop.example", "--business", "Shop", "--password-stdin",
                          cwd=tmp_path, env=env, stdin=PASSWORD)
        assert refused.returncode == 1
        assert "is empty (never migrated), so nothing was done" in stderr_lines(refused)[1]
        assert list(tmp_path.iterdir()) == []  # no secret files either
        assert loyalty("migrate", "--init", cwd=tmp_path, env=env).returncode == 0
    finally:
        postgres_databases.drop(url)


def test_a_missing_encryption_key_is_never_generated_anew_for_an_existing_database(tmp_path):
    env = {"LOYALTY_DATA_DIR": str(tmp_path)}
    assert loyalty("migrate", "--init", cwd=tmp_path, env=env).returncode == 0
    (tmp_path / "encryption_key").unlink()
    result = loyalty("create-user", "--email", "o@shop.example", "--business", "Shop", "--password-stdin",
                     cwd=tmp_path, env=env, stdin=PASSWORD)
    assert result.returncode == 1
    assert stderr_lines(result)[1].startswith(
        f"Error: LOYALTY_ENCRYPTION_KEY is not set and {tmp_path / 'encryption_key'} does not exist")
    assert not (tmp_path / "encryption_key").exists()


def test_a_failed_command_with_init_leaves_nothing_behind(tmp_path):
    env = {"LOYALTY_DATA_DIR": str(tmp_path / "data")}
    result = loyalty("create-user", "--email", "o@shop.example", "--business", "Shop", "--password-stdin",
                     "--init", cwd=tmp_path, env=env, stdin="short\n")
    assert result.returncode == 1 and "at least 10 characters" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_the_quick_start_sets_up_instance_by_itself_on_a_fresh_machine(tmp_path):
    """README: `loyalty-portal serve` (tests/test_logs_live.py starts it) and `loyalty-portal
    demo` need nothing configured; they say that they create ./instance."""
    result = loyalty("demo", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert stderr_lines(result)[1].startswith(f"First run: creating {tmp_path / 'instance'}")
    assert json.loads(result.stdout)["email"]
    again = loyalty("demo", "--json", cwd=tmp_path)
    assert again.returncode == 0 and "First run" not in again.stderr


def test_rotating_a_database_without_secrets_is_not_reported_as_success(tmp_path):
    env = {"LOYALTY_DATA_DIR": str(tmp_path)}
    assert loyalty("migrate", "--init", cwd=tmp_path, env=env).returncode == 0
    result = loyalty("rotate-encryption-key", cwd=tmp_path, env=env)
    assert result.returncode == 1
    assert "holds no App Secret, two-factor or webhook signing secret, so nothing was re-encrypted" in result.stderr
    assert "Re-encrypted" not in result.stdout


# -- --env-file -------------------------------------------------------------------------


def test_env_file_is_read_like_systemds_environment_file(tmp_path, postgres_databases):
    """A URL with `&` (which breaks `. /etc/loyalty/env` in a shell), quotes, comments."""
    url = postgres_databases.create_empty()
    try:
        key = Fernet.generate_key().decode()
        env_file = tmp_path / "env"
        env_file.write_text(
            "# the service's settings\n"
            f"LOYALTY_DATABASE_URL={url}?application_name=loyalty&connect_timeout=5\n"
            f"LOYALTY_DATA_DIR=\"{tmp_path / 'data'}\"\n"
            f"LOYALTY_ENCRYPTION_KEY='{key}'\n"
            "; another comment\n\n"
            "LOYALTY_SECRET_KEY=a&b$c d\n"
            "LOYALTY_KEY_PEPPER=pepper&more\n")
        (tmp_path / "data").mkdir(mode=0o700)
        other = {"LOYALTY_DATABASE_URL": "sqlite:////nonexistent/loyalty.db"}  # the file wins over this
        first = loyalty("--env-file", str(env_file), "migrate", "--init", cwd=tmp_path, env=other)
        assert first.returncode == 0, first.stderr
        assert stderr_lines(first)[0].startswith(f"Using database {url}?application_name=loyalty&connect_timeout=5")
        checked = loyalty("--env-file", str(env_file), "check", cwd=tmp_path)
        assert checked.returncode == 0, checked.stderr
        assert checked.stdout.startswith("OK: database answers, schema current")
        assert list((tmp_path / "data").iterdir()) == []  # every secret came from the file
    finally:
        postgres_databases.drop(url)


def test_a_broken_env_file_names_the_line_but_not_its_text(tmp_path):
    env_file = tmp_path / "env"
    env_file.write_text("LOYALTY_SIGNUP=open\nexport LOYALTY_SECRET_KEY hunter2\n")
    result = loyalty("--env-file", str(env_file), "check", cwd=tmp_path)
    assert result.returncode == 1
    assert stderr_lines(result) == [f"Error: env file {env_file}, line 2: expected NAME=VALUE"]
    missing = loyalty("--env-file", str(tmp_path / "nope"), "check", cwd=tmp_path)
    assert missing.returncode == 1 and "cannot read env file" in missing.stderr


# -- loyalty-portal check -----------------------------------------------------------------


@pytest.fixture
def deployment(tmp_path):
    """A migrated data dir with one application whose App Secret is encrypted under `key`."""
    key = Fernet.generate_key().decode()
    env = {"LOYALTY_DATA_DIR": str(tmp_path), "LOYALTY_ENCRYPTION_KEY": key}
    assert loyalty("create-user", "--init", "--email", "o@shop.example", "--business", "Shop",
                   "--password-stdin", cwd=tmp_path, env=env, stdin=PASSWORD).returncode == 0
    made = loyalty("create-app", "--owner", "o@shop.example", "--name", "Till", "--json", cwd=tmp_path, env=env)
    return env, json.loads(made.stdout)["app_secret"]


def test_check_passes_on_a_good_deployment(tmp_path, deployment):
    env, _ = deployment
    result = loyalty("check", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    from portal.db import known_migrations

    assert result.stdout.strip() == (f"OK: database answers, schema current ({len(known_migrations())} migrations), "
                                     "1 App Secret(s) decrypt.")


def test_check_names_secrets_the_keys_cannot_decrypt(tmp_path, deployment):
    env, secret = deployment
    dropped_old = {**env, "LOYALTY_ENCRYPTION_KEY": Fernet.generate_key().decode()}
    result = loyalty("check", cwd=tmp_path, env=dropped_old)
    assert result.returncode == 1
    assert "Problem: 1 of 1 stored App Secret(s) cannot be decrypted with LOYALTY_ENCRYPTION_KEY" in result.stderr
    assert stderr_lines(result)[-1] == "Error: 1 problem(s): this deployment is not ready to serve"
    assert secret not in result.stdout + result.stderr
    # With the retired key back at the end of the list, all is well again.
    both = {**env, "LOYALTY_ENCRYPTION_KEY": f"{dropped_old['LOYALTY_ENCRYPTION_KEY']},{env['LOYALTY_ENCRYPTION_KEY']}"}
    assert loyalty("check", cwd=tmp_path, env=both).returncode == 0


def test_check_names_a_schema_that_is_not_current(tmp_path, deployment):
    env, _ = deployment
    with sqlite3.connect(tmp_path / "loyalty.db") as conn:
        conn.execute("DELETE FROM migratehistory WHERE name = '002_teams'")
    result = loyalty("check", cwd=tmp_path, env=env)
    assert result.returncode == 1
    assert ("Problem: the schema is not current: 1 migration(s) not applied (002_teams): run loyalty-portal migrate"
            in stderr_lines(result))


def test_what_the_cli_writes_is_readable_by_its_owner_only_whatever_the_umask(tmp_path):
    data = tmp_path / "data"
    env = {"LOYALTY_DATA_DIR": str(data)}
    base = {k: v for k, v in os.environ.items() if not k.startswith("LOYALTY_")}
    base.update(PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "sdk")]), LOYALTY_PASSWORD_HASHING="fast", **env)
    for args in (["migrate", "--init"], ["demo", "--json"]):
        done = subprocess.run([sys.executable, "-m", "portal.cli", *args], cwd=tmp_path, env=base, capture_output=True,
                              text=True, timeout=60, preexec_fn=lambda: os.umask(0))
        assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in data.iterdir()}
    assert {"secret_key", "encryption_key", "key_pepper", "loyalty.db"} <= set(modes)
    assert {name: mode for name, mode in modes.items() if mode != 0o600} == {}


def test_open_private_writes_0600_and_tightens_an_existing_file(tmp_path):
    from portal.config import open_private

    old = tmp_path / "dump.json"
    old.write_text("{}")
    old.chmod(0o644)
    previous = os.umask(0)
    try:
        with open_private(old) as handle:
            handle.write(b"[]")
        with open_private(tmp_path / "new.json", "w") as handle:
            handle.write("{}")
    finally:
        os.umask(previous)
    assert old.read_text() == "[]"
    assert stat.S_IMODE(old.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "new.json").stat().st_mode) == 0o600


def test_the_quick_start_exception_never_regenerates_a_key_in_an_existing_instance(tmp_path):
    """Only a ./instance that does not exist is set up unasked: one that lost its
    encryption_key gets no new one (stored App Secrets would be unreadable)."""
    assert loyalty("demo", cwd=tmp_path).returncode == 0
    (tmp_path / "instance" / "encryption_key").unlink()
    result = loyalty("demo", cwd=tmp_path)
    assert result.returncode == 1
    assert "LOYALTY_ENCRYPTION_KEY is not set and" in result.stderr and "--init" in result.stderr
    assert not (tmp_path / "instance" / "encryption_key").exists()
