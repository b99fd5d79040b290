"""Deployment settings, read once from the environment (and an optional `.env`) and validated.

Nothing below this module reads the environment. A bad value stops start-up with one line per
problem naming the variable, so an operator knows exactly what to fix.
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from stores.secrets import SecretBox

_SECRET = re.compile("TOKEN|SECRET|KEY")
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]


MAX_WEB_WORKERS = 256


class Settings(BaseSettings):
    """Every setting, with its environment variable name in upper case."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True
    )

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    web_workers: int | None = Field(
        default=None,
        ge=1,
        le=MAX_WEB_WORKERS,
        description="How many processes `serve` runs, each with an event loop of its own, all "
        "on one port (`serve --workers N` overrides it); default: the CPUs this process may "
        "run on. Each worker uses the CPU time of one core at most.",
    )
    public_base_url: str | None = Field(
        default=None,
        description="The https:// address Twilio reaches this server at; "
        "defaults to http://HOST:PORT (only useful locally).",
    )
    twilio_auth_token: SecretStr | None = Field(
        default=None,
        description="Checks webhook signatures for numbers that have no token of their own.",
    )
    mongodb_uri: str | None = Field(
        default=None, description="MongoDB to use; without it an embedded database is started."
    )
    data_dir: Path = Field(
        default=Path("var"),
        description="Where the embedded database lives (DATA_DIR/db), shared by serve, the demo "
        "and every other command.",
    )
    openai_api_key: SecretStr | None = Field(
        default=None, description="Turns on the OpenAI providers for non-local model names."
    )
    speech_agent_text_model: str = Field(
        default="gpt-4.1-mini",
        description="The chat model that answers texts (SMS) to a speech-to-speech agent, whose "
        "Realtime inferenceModel cannot answer a text.",
    )
    openai_base_url: str | None = None
    openai_websocket_base_url: str | None = Field(
        default=None, description="The Realtime WebSocket base; derived from the base URL if unset."
    )
    openai_llm_base_url: str | None = Field(
        default=None,
        description="An OpenAI-compatible server (vLLM, Ollama, llama.cpp) for the LLM.",
    )
    openai_llm_api_key: SecretStr | None = None
    stream_token_secret: SecretStr = Field(
        default_factory=lambda: SecretStr(secrets.token_urlsafe(32)),
        description="Signs media-stream tokens; set the same value on every server instance.",
    )
    stream_token_ttl_seconds: float = Field(default=60.0, gt=0, le=600)
    stream_start_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        le=60,
        description="How long a media stream may take to present a valid `start` (Twilio sends "
        "it within a second); a stream that has not is closed with 1008.",
    )
    max_pending_streams: int = Field(
        default=100,
        ge=1,
        le=10_000,
        description="Media streams per process that may wait for their `start` at once; more "
        "are refused at once with 1013 (try again later), so idle sockets cannot crowd out calls.",
    )
    event_token_ttl_seconds: float = Field(
        default=60.0,
        gt=0,
        le=600,
        description="How long a call-log event-stream token opens streams (the page mints a "
        "new one for every connect).",
    )
    event_stream_max_seconds: float = Field(
        default=300.0, gt=0, le=3600, description="How long one event stream stays open."
    )
    api_key_recheck_seconds: float = Field(
        default=2.0,
        gt=0,
        le=60,
        description="How often open event streams re-check that their API key is not revoked.",
    )
    webhook_body_max_bytes: int = Field(
        default=64 * 1024, ge=1024, description="The largest body a /twilio/ webhook may send."
    )
    api_body_max_bytes: int = Field(
        default=1024 * 1024, ge=1024, description="The largest body any other request may send."
    )
    secrets_key: SecretStr | None = Field(
        default=None,
        description="Fernet key sealing numbers' Twilio auth tokens at rest; required with "
        "MONGODB_URI. Without it the embedded database uses DATA_DIR/secrets.key (made once).",
    )
    twilio_api_base_url: str | None = Field(
        default=None,
        description="Where Twilio's REST API is reached (default https://api.twilio.com); "
        "tests point it at a local stand-in.",
    )
    sms_reply_budget_seconds: float = Field(
        default=5.0,
        gt=0,
        le=12,
        description="How long an SMS webhook waits for the LLM before answering at once and "
        "sending the reply through the REST API instead (Twilio waits 15 s at most).",
    )
    drain_seconds: float = Field(
        default=120.0,
        ge=0,
        le=3600,
        description="On SIGTERM or SIGINT, how long live calls may go on before each hears "
        "SHUTDOWN_GOODBYE_TEXT and ends (a second signal ends them at once).",
    )
    shutdown_goodbye_text: str = Field(
        default="I'm sorry, I have to end this call now. Please call back in a moment. Goodbye!",
        min_length=1,
        description="What a call still live at the end of a drain hears before it ends.",
    )
    heartbeat_seconds: float = Field(
        default=15.0,
        gt=0,
        le=300,
        description="How often a server marks its live calls as alive in the database (one "
        "write for all of them); also how often it sweeps for lost calls.",
    )
    call_lost_after_seconds: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="An active call whose heartbeat is older than this (its server died, or "
        "its media stream never started) is finalised by any server's sweeper.",
    )
    scheduler: bool = Field(
        default=True,
        description="Run the scheduled-call worker inside `serve` (`voice-server worker` runs "
        "it alone); any number of servers may run one.",
    )
    scheduler_lease_seconds: float = Field(
        default=60.0,
        ge=5,
        le=3600,
        description="How long a worker's claim on a scheduled call lasts without renewal; "
        "another worker takes over a call whose worker died after this.",
    )
    scheduled_call_max_lateness_seconds: float = Field(
        default=3600.0,
        gt=0,
        description="A scheduled call found due more than this late (the servers were down) "
        "fails instead of ringing people at an unexpected hour.",
    )
    scheduled_call_max_destinations: int = Field(
        default=50,
        ge=1,
        le=100,
        description="The most numbers one scheduled call may dial; a call with more fails.",
    )
    scheduled_call_outcome_wait_seconds: float = Field(
        default=3600.0,
        ge=1,
        description="A dialled number with no outcome this long after it was dialled (its "
        "status callback never came) has its outcome asked of Twilio's REST API.",
    )
    outbound_hello_wait_ms: float = Field(
        default=2000.0,
        ge=0,
        le=10_000,
        description="On a call we placed, how long the agent waits for the callee's first "
        "words before it speaks first.",
    )
    log_level: LogLevel = "INFO"
    log_format: Literal["json", "console"] = "json"

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator(
        "public_base_url", "openai_base_url", "openai_llm_base_url", "twilio_api_base_url"
    )
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an absolute http:// or https:// URL")
        if parts.query or parts.fragment:
            raise ValueError("must not carry a query or fragment")
        return value.rstrip("/")

    @field_validator("mongodb_uri")
    @classmethod
    def _mongodb_uri(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("mongodb://", "mongodb+srv://")):
            raise ValueError("must start with mongodb:// or mongodb+srv://")
        return value

    @field_validator("stream_token_secret")
    @classmethod
    def _long_secret(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters (e.g. `openssl rand -hex 32`)")
        return value

    @field_validator("secrets_key")
    @classmethod
    def _fernet_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            SecretBox(value.get_secret_value())  # raises ValueError saying what a key is
        return value

    @property
    def base_url(self) -> str:
        """The public http(s) base URL, as Twilio sees this server."""
        return self.public_base_url or f"http://{self.host}:{self.port}"

    @property
    def stream_url(self) -> str:
        """The media-stream WebSocket URL handed to Twilio in TwiML."""
        base = self.base_url
        scheme = "wss" if base.startswith("https://") else "ws"
        return f"{scheme}://{base.split('://', 1)[1]}/twilio/stream"


class SettingsError(Exception):
    """Settings failed validation; the message lists every bad variable."""


def load_settings(**overrides: object) -> Settings:
    """Read and validate the settings, turning pydantic's report into one line per variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        lines = []
        for problem in error.errors():
            name = "_".join(str(part) for part in problem["loc"]).upper() or "SETTINGS"
            shown = "" if _SECRET.search(name) else f" (got {problem.get('input')!r})"
            lines.append(f"{name}: {problem['msg']}{shown}")
        raise SettingsError("invalid settings:\n  " + "\n  ".join(lines)) from None
