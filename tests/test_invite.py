"""LOYALTY_SIGNUP=invite: only emails the operator invited may sign up."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from portal import create_app, db
from portal.cli import main
from portal.domain import DomainError
from portal.domain.accounts import create_partner_account


@pytest.fixture
def invite_only(tmp_path):
    env = {"LOYALTY_DATA_DIR": str(tmp_path), "LOYALTY_DATABASE_URL": "", "LOYALTY_SIGNUP": "invite",
           "LOYALTY_PASSWORD_HASHING": "fast"}
    runner = CliRunner()
    yield lambda *args: runner.invoke(main, list(args), env=env, catch_exceptions=False)
    db.database.close()


def _sign_up(tmp_path, email):
    app = create_app({"DATA_DIR": str(tmp_path), "SIGNUP": "invite", "PASSWORD_HASHING": "fast"})
    with app.app_context():
        return create_partner_account("Shop", email, "a long enough passphrase")


def test_an_uninvited_email_cannot_sign_up(invite_only, tmp_path):
    assert invite_only("migrate", "--init").exit_code == 0
    with pytest.raises(DomainError, match="by invitation"):
        _sign_up(tmp_path, "stranger@shop.example")


def test_an_invited_email_signs_up_once(invite_only, tmp_path):
    result = invite_only("invite", "Ann@Shop.example", "--init")
    assert result.exit_code == 0
    assert "Invited ann@shop.example" in result.output
    user = _sign_up(tmp_path, "ann@shop.example")
    assert user.role == "owner"
    with pytest.raises(DomainError):
        _sign_up(tmp_path, "ann@shop.example")


def test_inviting_a_bad_email_is_one_clear_line(invite_only):
    result = invite_only("invite", "not-an-email", "--init")
    assert result.exit_code != 0
    assert result.stderr.strip().splitlines()[1:] == ["Error: Enter a valid email address, like name@example.com."]
