"""Operator commands around two-factor secrets: rotating the encryption key keeps them
readable, and `turn-off-two-factor` lets a locked-out user in with their password again."""

from __future__ import annotations

import pyotp
import pytest
from click.testing import CliRunner
from cryptography.fernet import Fernet

from portal import create_app, db
from portal.cli import main
from portal.domain import two_factor
from portal.domain.accounts import create_partner_account
from portal.models import AuditEvent, RecoveryCode, User, UserSession

PASSWORD = "a long enough passphrase"


@pytest.fixture
def cli(tmp_path):
    runner = CliRunner()

    def run(encryption_key, *args):
        env = {"LOYALTY_DATA_DIR": str(tmp_path), "LOYALTY_DATABASE_URL": "", "LOYALTY_ENCRYPTION_KEY": encryption_key}
        return runner.invoke(main, list(args), env=env, catch_exceptions=False)

    yield run
    db.close_all()


def user_with_two_factor(tmp_path, encryption_key) -> tuple[pyotp.TOTP, list[str]]:
    app = create_app({"DATA_DIR": str(tmp_path), "ENCRYPTION_KEY": encryption_key, "PASSWORD_HASHING": "fast"})
    with app.app_context():
        db.migrate()
        user = create_partner_account("Shop", "o@shop.example", PASSWORD)
        secret = two_factor.start_setup(user)
        codes = two_factor.turn_on(User.get_by_id(user.id), pyotp.TOTP(secret).now())
        UserSession.create(user=user, token_hash="x" * 64)
    return pyotp.TOTP(secret), codes


def test_rotating_the_encryption_key_keeps_two_factor_secrets_readable(cli, tmp_path):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    totp, _ = user_with_two_factor(tmp_path, old)
    result = cli(f"{new},{old}", "rotate-encryption-key")
    assert result.exit_code == 0 and "1 two-factor secret(s)" in result.output
    app = create_app({"DATA_DIR": str(tmp_path), "ENCRYPTION_KEY": new})
    with app.app_context():
        assert two_factor._secret_of(User.get(User.email == "o@shop.example")) == totp.secret


def test_a_lost_encryption_key_leaves_recovery_codes_working_and_no_error_page(tmp_path):
    totp, codes = user_with_two_factor(tmp_path, Fernet.generate_key().decode())
    app = create_app({"DATA_DIR": str(tmp_path), "ENCRYPTION_KEY": Fernet.generate_key().decode()})
    with app.app_context():
        user = User.get(User.email == "o@shop.example")
        assert two_factor.check_code(user, totp.now()) is None  # refused, not a crash
        assert two_factor.check_code(user, codes[0]) == "recovery code"
    db.close_all()


def test_turn_off_two_factor_for_a_locked_out_user(cli, tmp_path):
    key = Fernet.generate_key().decode()
    user_with_two_factor(tmp_path, key)
    result = cli(key, "turn-off-two-factor", "O@shop.example")
    assert result.exit_code == 0 and "turned off for o@shop.example" in result.output
    assert "already off" in cli(key, "turn-off-two-factor", "o@shop.example").output
    assert cli(key, "turn-off-two-factor", "nobody@shop.example").exit_code != 0
    app = create_app({"DATA_DIR": str(tmp_path), "ENCRYPTION_KEY": key})
    with app.app_context():
        user = User.get(User.email == "o@shop.example")
        assert not user.has_two_factor and user.totp_secret is None
        assert RecoveryCode.select().count() == 0 and UserSession.select().count() == 0
        assert AuditEvent.get(AuditEvent.action == "2fa.disabled").detail == "by the operator"
