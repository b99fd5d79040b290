"""Settings: defaults, one line per bad variable naming it, secrets never echoed, `.env`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from voice_server.settings import SettingsError, load_settings

_VARIABLES = (
    "HOST",
    "PORT",
    "PUBLIC_BASE_URL",
    "TWILIO_AUTH_TOKEN",
    "MONGODB_URI",
    "DATA_DIR",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "STREAM_TOKEN_SECRET",
    "STREAM_TOKEN_TTL_SECONDS",
    "STREAM_START_TIMEOUT_SECONDS",
    "MAX_PENDING_STREAMS",
    "LOG_LEVEL",
    "LOG_FORMAT",
)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No setting from the machine running the tests, and no `.env` but the test's own."""
    for name in _VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def test_defaults_work_with_nothing_set() -> None:
    settings = load_settings()

    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.public_base_url is None
    assert settings.base_url == "http://127.0.0.1:8000"
    assert settings.mongodb_uri is None
    assert settings.data_dir == Path("var")
    assert settings.log_level == "INFO"
    assert settings.log_format == "json"
    assert settings.stream_token_ttl_seconds == 60.0
    assert settings.stream_start_timeout_seconds == 5.0
    assert settings.max_pending_streams == 100
    assert len(settings.stream_token_secret.get_secret_value()) >= 32


def test_each_process_gets_its_own_random_secret_by_default() -> None:
    first = load_settings().stream_token_secret.get_secret_value()
    second = load_settings().stream_token_secret.get_secret_value()
    assert first != second


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PUBLIC_BASE_URL", "ftp://voice.example.com"),
        ("PUBLIC_BASE_URL", "voice.example.com"),
        ("PUBLIC_BASE_URL", "https://voice.example.com?x=1"),
        ("PUBLIC_BASE_URL", "https://voice.example.com#top"),
        ("OPENAI_BASE_URL", "localhost:8080/v1"),
        ("MONGODB_URI", "postgres://db.example.com/voice"),
        ("LOG_LEVEL", "VERBOSE"),
        ("LOG_FORMAT", "xml"),
        ("PORT", "65536"),
        ("PORT", "-1"),
        ("PORT", "eighty"),
        ("STREAM_TOKEN_TTL_SECONDS", "0"),
        ("STREAM_START_TIMEOUT_SECONDS", "0"),
        ("STREAM_START_TIMEOUT_SECONDS", "3600"),
        ("MAX_PENDING_STREAMS", "0"),
        ("MAX_PENDING_STREAMS", "many"),
    ],
)
def test_bad_value_raises_settings_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)

    with pytest.raises(SettingsError) as raised:
        load_settings()

    lines = str(raised.value).splitlines()[1:]
    assert [line.split(":", 1)[0].strip() for line in lines] == [variable]


def test_every_bad_variable_gets_its_own_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "70000")
    monkeypatch.setenv("LOG_LEVEL", "loud")
    monkeypatch.setenv("MONGODB_URI", "mysql://x")

    with pytest.raises(SettingsError) as raised:
        load_settings()

    named = sorted(line.split(":", 1)[0].strip() for line in str(raised.value).splitlines()[1:])
    assert named == ["LOG_LEVEL", "MONGODB_URI", "PORT"]


def test_short_secret_is_refused_without_showing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "hunter2-not-long-enough"
    monkeypatch.setenv("STREAM_TOKEN_SECRET", secret)

    with pytest.raises(SettingsError) as raised:
        load_settings()

    assert "STREAM_TOKEN_SECRET" in str(raised.value)
    assert secret not in str(raised.value)
    assert secret not in repr(raised.value)
    assert raised.value.__cause__ is None


def test_short_secret_override_is_refused_without_showing_it() -> None:
    secret = "s3cr3t-override"

    with pytest.raises(SettingsError) as raised:
        load_settings(stream_token_secret=secret)

    assert "STREAM_TOKEN_SECRET" in str(raised.value)
    assert secret not in str(raised.value)


def test_a_non_secret_bad_value_is_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONGODB_URI", "postgres://db.example.com/voice")

    with pytest.raises(SettingsError, match=re.escape("postgres://db.example.com/voice")):
        load_settings()


def test_overrides_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "9000")
    assert load_settings(port=9001).port == 9001


def test_bad_override_raises_settings_error_naming_the_variable() -> None:
    with pytest.raises(SettingsError, match="PUBLIC_BASE_URL"):
        load_settings(public_base_url="https://voice.example.com/?a=b")


def test_log_level_is_case_insensitive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_LEVEL", "debug")
    assert load_settings().log_level == "DEBUG"


def test_stream_url_is_wss_for_an_https_base(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://voice.example.com/")

    settings = load_settings()

    assert settings.base_url == "https://voice.example.com"
    assert settings.stream_url == "wss://voice.example.com/twilio/stream"


def test_stream_url_is_ws_for_an_http_base(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUBLIC_BASE_URL", "http://localhost:8080")
    assert load_settings().stream_url == "ws://localhost:8080/twilio/stream"


def test_stream_url_defaults_to_host_and_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOST", "0.0.0.0")
    monkeypatch.setenv("PORT", "9000")
    assert load_settings().stream_url == "ws://0.0.0.0:9000/twilio/stream"


def test_dot_env_file_is_read(tmp_path: Path) -> None:
    secret = "x" * 40
    (tmp_path / ".env").write_text(
        "PORT=9123\n"
        "PUBLIC_BASE_URL=https://from-dotenv.example.com\n"
        f"STREAM_TOKEN_SECRET={secret}\n"
        "LOG_FORMAT=console\n",
        encoding="utf-8",
    )

    settings = load_settings()

    assert settings.port == 9123
    assert settings.stream_url == "wss://from-dotenv.example.com/twilio/stream"
    assert settings.stream_token_secret.get_secret_value() == secret
    assert settings.log_format == "console"


def test_environment_wins_over_dot_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("PORT=9123\n", encoding="utf-8")
    monkeypatch.setenv("PORT", "9124")
    assert load_settings().port == 9124


def test_bad_value_in_dot_env_names_the_variable(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("LOG_LEVEL=chatty\n", encoding="utf-8")

    with pytest.raises(SettingsError, match="LOG_LEVEL"):
        load_settings()
