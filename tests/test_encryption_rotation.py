"""Rotating the server's encryption key: App Secrets stay readable throughout."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from cryptography.fernet import Fernet

from portal import create_app, db
from portal.cli import main
from portal.credentials import SecretBox
from portal.models import AppSecret


@pytest.fixture
def cli(tmp_path):
    runner = CliRunner()

    def run(encryption_key, *args, stdin=None):
        env = {"LOYALTY_DATA_DIR": str(tmp_path), "LOYALTY_DATABASE_URL": "", "LOYALTY_ENCRYPTION_KEY": encryption_key,
               "LOYALTY_PASSWORD_HASHING": "fast"}
        return runner.invoke(main, list(args), input=stdin, env=env, catch_exceptions=False)

    yield run
    db.database.close()


def stored_secret(tmp_path, encryption_key) -> str:
    """The App Secret as the gate decrypts it with `encryption_key`."""
    from portal.api.gate import valid_secrets

    app = create_app({"DATA_DIR": str(tmp_path), "ENCRYPTION_KEY": encryption_key})
    with app.app_context():
        return valid_secrets(AppSecret.get().application_id)[0]


def test_rotation_re_encrypts_every_secret_under_the_new_key(cli, tmp_path):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    assert cli(old, "create-user", "--email", "o@shop.example", "--business", "Shop", "--password-stdin",
               "--init", stdin="a long enough passphrase\n").exit_code == 0
    created = json.loads(cli(old, "create-app", "--owner", "o@shop.example", "--name", "Till", "--json").stdout)

    result = cli(f"{new},{old}", "rotate-encryption-key")
    assert result.exit_code == 0, result.output
    assert "Re-encrypted 1 App Secret(s)" in result.output

    assert stored_secret(tmp_path, new) == created["app_secret"]
    with pytest.raises(ValueError, match="cannot be decrypted"):
        SecretBox([old]).decrypt(AppSecret.get().ciphertext)


def test_rotation_without_the_old_key_changes_nothing_and_says_why(cli, tmp_path):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    cli(old, "create-user", "--email", "o@shop.example", "--business", "Shop", "--password-stdin", "--init",
        stdin="a long enough passphrase\n")
    created = json.loads(cli(old, "create-app", "--owner", "o@shop.example", "--name", "Till", "--json").stdout)

    result = cli(new, "rotate-encryption-key")
    assert result.exit_code != 0
    assert "nothing was changed" in result.output
    assert stored_secret(tmp_path, old) == created["app_secret"]
