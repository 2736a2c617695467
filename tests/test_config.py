"""Settings: nothing required for a first run, secrets generated once, clear errors."""

import stat

import pytest

from portal.config import ConfigError, load_settings


def test_first_run_generates_the_servers_secrets_once(tmp_path):
    first = load_settings({"DATA_DIR": str(tmp_path)})
    again = load_settings({"DATA_DIR": str(tmp_path)})
    assert first.secret_key == again.secret_key
    assert first.encryption_keys == again.encryption_keys
    assert first.key_pepper == again.key_pepper
    assert first.database_url == f"sqlite:///{tmp_path / 'loyalty.db'}"
    for name in ("secret_key", "encryption_key", "key_pepper"):
        mode = stat.S_IMODE((tmp_path / name).stat().st_mode)
        assert mode == 0o600, f"{name} is readable by others"


def test_environment_values_win_over_generated_ones(tmp_path, monkeypatch):
    monkeypatch.setenv("LOYALTY_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("LOYALTY_SECRET_KEY", "from-env")
    assert load_settings().secret_key == "from-env"
    assert not (tmp_path / "secret_key").exists()


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("DATABASE_URL", "mysql://x", "must start with sqlite:/// or postgresql://"),
        ("SIGNUP", "sometimes", "'open' or 'invite'"),
        ("ENCRYPTION_KEY", "too-short", "Fernet keys"),
        ("LOG_FORMAT", "xml", "LOYALTY_LOG_FORMAT must be 'text'"),
    ],
)
def test_a_wrong_setting_is_one_clear_line(tmp_path, name, value, says):
    with pytest.raises(ConfigError, match=says) as info:
        load_settings({"DATA_DIR": str(tmp_path), name: value})
    assert "\n" not in str(info.value)
    assert value not in str(info.value) or name == "SIGNUP"


def test_several_encryption_keys_rotate(tmp_path):
    from cryptography.fernet import Fernet

    keys = [Fernet.generate_key().decode() for _ in range(2)]
    settings = load_settings({"DATA_DIR": str(tmp_path), "ENCRYPTION_KEY": ", ".join(keys)})
    assert settings.encryption_keys == tuple(keys)


def test_secure_cookies_mark_the_session_cookie_secure(tmp_path):
    from portal import create_app

    plain = create_app({"DATA_DIR": str(tmp_path)})
    assert plain.config["SESSION_COOKIE_SECURE"] is False
    behind_tls = create_app({"DATA_DIR": str(tmp_path), "SECURE_COOKIES": "1"})
    assert behind_tls.config["SESSION_COOKIE_SECURE"] is True
    with pytest.raises(ConfigError, match="LOYALTY_SECURE_COOKIES"):
        load_settings({"DATA_DIR": str(tmp_path), "SECURE_COOKIES": "maybe"})
