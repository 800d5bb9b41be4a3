"""Settings from environment variables (and a `.env` file for development)."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres_url(value: object) -> bool:
    """True for a PostgreSQL connection URL (DATABASE_URL); anything else is a SQLite path."""
    return str(value).startswith(POSTGRES_SCHEMES)


ROOT = Path(__file__).resolve().parent.parent


class SettingsError(ValueError):
    """A setting has a value the bot cannot use."""


def load_dotenv(path: Path) -> dict[str, str]:
    """Read KEY=VALUE lines from a .env file; comments and blank lines are skipped."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :]
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise SettingsError(f"{path}:{number}: expected KEY=VALUE, got {line!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def _int(env: dict[str, str], key: str, default: int) -> int:
    raw = env.get(key, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"{key} must be a whole number, got {raw!r}") from None


def _float(env: dict[str, str], key: str, default: float) -> float:
    raw = env.get(key, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise SettingsError(f"{key} must be a number, got {raw!r}") from None


def _bool(env: dict[str, str], key: str, default: bool) -> bool:
    raw = env.get(key, "").strip().lower()
    if not raw:
        return default
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{key} must be true or false, got {raw!r}")


def _path(env: dict[str, str], key: str, default: Path) -> Path:
    raw = env.get(key, "").strip()
    path = Path(raw) if raw else default
    return path if path.is_absolute() else ROOT / path


@dataclass(frozen=True)
class Settings:
    """Everything the bot can be configured with. See README.md, section Settings."""

    database_path: Path = ROOT / "var" / "streife.sqlite3"
    database_url: str = ""  # postgresql://... : the log in PostgreSQL, shared by several instances (else SQLite at database_path)
    model_path: Path = ROOT / "models" / "nlu.tar.gz"
    data_dir: Path = ROOT / "data"
    web_host: str = "127.0.0.1"
    web_port: int = 8080
    public_url: str = ""
    duty_hours: str = "Mo-Fr 08:00-16:00"
    timezone: str = "Europe/Berlin"
    # Chosen on cross-validation (nlu/calibrate.py's rules; README "Thresholds"), never on real messages.
    confidence_threshold: float = 0.22
    escalation_threshold: float = 0.40
    check_threshold: float = 0.18  # danger this likely (below ESCALATION_THRESHOLD): ask "in danger?"
    model_watch_seconds: float = 5.0  # poll the model file for a new version (0: only SIGHUP)
    nlu_python: Path = ROOT / ".venv-nlu" / "bin" / "python"  # the Rasa side's interpreter (nlu/worker.py)
    nlu_workers: int = field(default_factory=lambda: os.cpu_count() or 1)  # worker processes: one per core
    nlu_deadline: float = 2.0  # seconds a parse may take; past that triage decides without the model
    retention_days: int = 30
    pseudonym_key: str = ""
    log_level: str = "INFO"
    telegram_bot_token: str = ""
    telegram_api_base_url: str = "https://api.telegram.org/bot"
    telegram_webhook_url: str = ""
    telegram_webhook_secret: str = ""
    telegram_max_rate: float = 30.0  # sendMessage calls per second overall (Telegram's documented limit)
    officer_alert_chat_id: str = ""
    alert_include_text: bool = False
    instagram_verify_token: str = ""
    instagram_app_secret: str = ""
    instagram_access_token: str = ""
    instagram_account_id: str = ""
    instagram_human_agent_tag: bool = False
    instagram_app_id: str = ""
    messenger_access_token: str = ""
    messenger_page_id: str = "me"
    disclosure_pause_hours: float = 24.0
    flood_messages: int = 8  # more messages than this from one chat within 30 s: one calm note, then quiet
    metrics_token: str = ""  # bearer token for /metrics and the detailed /healthz (officers may read them too)
    trusted_proxies: tuple[str, ...] = ()  # reverse proxies whose X-Forwarded-For names the client
    webchat_messages_per_minute: int = 20  # per web chat; more are refused (emergencies excepted)
    webchat_new_chats_per_hour: int = 30  # new web chats per client address
    webchat_chat_kb_per_hour: int = 64  # text stored per web chat
    webchat_total_mb_per_hour: int = 20  # text stored for all web chats together
    webchat_streams: int = 500  # open live streams of web chat pages overall
    graph_api_base_url: str = "https://graph.facebook.com"
    graph_api_version: str = "v21.0"
    x_consumer_key: str = ""  # X app's API key: with the secret and the account's access token, X DMs are answered
    x_consumer_secret: str = ""  # also checks the CRC and the x-twitter-webhooks-signature of /x/webhook
    x_access_token: str = ""
    x_access_token_secret: str = ""
    x_api_base_url: str = "https://api.x.com"
    mastodon_base_url: str = ""  # the instance of the police account, e.g. https://social.example (with the token: Mastodon DMs)
    mastodon_access_token: str = ""  # the account's app token (read:accounts, read:notifications, read:statuses, write:statuses)
    mastodon_poll_seconds: float = 10.0  # fetch notifications this often while the stream is down
    extra: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, dotenv: Path | None = None) -> "Settings":
        """Build settings from a .env file overlaid by the process environment."""
        env = load_dotenv(dotenv if dotenv is not None else ROOT / ".env")
        env.update(os.environ if environ is None else environ)
        get = lambda key, default="": env.get(key, "").strip() or default  # noqa: E731
        settings = cls(
            database_path=_path(env, "DATABASE_PATH", cls.database_path),
            database_url=get("DATABASE_URL"),
            model_path=_path(env, "MODEL_PATH", cls.model_path),
            data_dir=_path(env, "DATA_DIR", cls.data_dir),
            web_host=get("WEB_HOST", cls.web_host),
            web_port=_int(env, "WEB_PORT", cls.web_port),
            public_url=get("PUBLIC_URL").rstrip("/"),
            duty_hours=get("DUTY_HOURS", cls.duty_hours),
            timezone=get("TIMEZONE", cls.timezone),
            confidence_threshold=_float(env, "CONFIDENCE_THRESHOLD", cls.confidence_threshold),
            escalation_threshold=_float(env, "ESCALATION_THRESHOLD", cls.escalation_threshold),
            check_threshold=_float(env, "CHECK_THRESHOLD", cls.check_threshold),
            model_watch_seconds=_float(env, "MODEL_WATCH_SECONDS", cls.model_watch_seconds),
            nlu_python=_path(env, "NLU_PYTHON", cls.nlu_python),
            nlu_workers=_int(env, "NLU_WORKERS", os.cpu_count() or 1),
            nlu_deadline=_float(env, "NLU_DEADLINE", cls.nlu_deadline),
            retention_days=_int(env, "RETENTION_DAYS", cls.retention_days),
            pseudonym_key=get("PSEUDONYM_KEY"),
            log_level=get("LOG_LEVEL", cls.log_level).upper(),
            telegram_bot_token=get("TELEGRAM_BOT_TOKEN"),
            telegram_api_base_url=get("TELEGRAM_API_BASE_URL", cls.telegram_api_base_url),
            telegram_webhook_url=get("TELEGRAM_WEBHOOK_URL"),
            telegram_webhook_secret=get("TELEGRAM_WEBHOOK_SECRET"),
            telegram_max_rate=_float(env, "TELEGRAM_MAX_RATE", cls.telegram_max_rate),
            officer_alert_chat_id=get("OFFICER_ALERT_CHAT_ID"),
            alert_include_text=_bool(env, "ALERT_INCLUDE_TEXT", False),
            instagram_verify_token=get("INSTAGRAM_VERIFY_TOKEN"),
            instagram_app_secret=get("INSTAGRAM_APP_SECRET"),
            instagram_access_token=get("INSTAGRAM_ACCESS_TOKEN"),
            instagram_account_id=get("INSTAGRAM_ACCOUNT_ID"),
            instagram_human_agent_tag=_bool(env, "INSTAGRAM_HUMAN_AGENT_TAG", False),
            instagram_app_id=get("INSTAGRAM_APP_ID"),
            messenger_access_token=get("MESSENGER_ACCESS_TOKEN"),
            messenger_page_id=get("MESSENGER_PAGE_ID", cls.messenger_page_id),
            disclosure_pause_hours=_float(env, "DISCLOSURE_PAUSE_HOURS", cls.disclosure_pause_hours),
            flood_messages=_int(env, "FLOOD_MESSAGES", cls.flood_messages),
            metrics_token=get("METRICS_TOKEN"),
            trusted_proxies=tuple(p.strip() for p in get("TRUSTED_PROXIES").split(",") if p.strip()),
            webchat_messages_per_minute=_int(env, "WEBCHAT_MESSAGES_PER_MINUTE", cls.webchat_messages_per_minute),
            webchat_new_chats_per_hour=_int(env, "WEBCHAT_NEW_CHATS_PER_HOUR", cls.webchat_new_chats_per_hour),
            webchat_chat_kb_per_hour=_int(env, "WEBCHAT_CHAT_KB_PER_HOUR", cls.webchat_chat_kb_per_hour),
            webchat_total_mb_per_hour=_int(env, "WEBCHAT_TOTAL_MB_PER_HOUR", cls.webchat_total_mb_per_hour),
            webchat_streams=_int(env, "WEBCHAT_STREAMS", cls.webchat_streams),
            graph_api_base_url=get("GRAPH_API_BASE_URL", cls.graph_api_base_url).rstrip("/"),
            graph_api_version=get("GRAPH_API_VERSION", cls.graph_api_version),
            x_consumer_key=get("X_CONSUMER_KEY"),
            x_consumer_secret=get("X_CONSUMER_SECRET"),
            x_access_token=get("X_ACCESS_TOKEN"),
            x_access_token_secret=get("X_ACCESS_TOKEN_SECRET"),
            x_api_base_url=get("X_API_BASE_URL", cls.x_api_base_url).rstrip("/"),
            mastodon_base_url=get("MASTODON_BASE_URL").rstrip("/"),
            mastodon_access_token=get("MASTODON_ACCESS_TOKEN"),
            mastodon_poll_seconds=_float(env, "MASTODON_POLL_SECONDS", cls.mastodon_poll_seconds),
            extra=env,
        )
        settings.validate()
        return settings

    def validate(self) -> None:
        """Raise SettingsError for values that cannot work."""
        if self.database_url and not is_postgres_url(self.database_url):
            raise SettingsError("DATABASE_URL must start with postgresql:// (leave it empty for SQLite at DATABASE_PATH)")
        if not 0 < self.web_port < 65536:
            raise SettingsError(f"WEB_PORT must be between 1 and 65535, got {self.web_port}")
        for name in ("confidence_threshold", "escalation_threshold", "check_threshold"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise SettingsError(f"{name.upper()} must be between 0 and 1, got {value}")
        if self.disclosure_pause_hours <= 0:
            raise SettingsError(f"DISCLOSURE_PAUSE_HOURS must be more than 0, got {self.disclosure_pause_hours}")
        if self.flood_messages < 1:
            raise SettingsError(f"FLOOD_MESSAGES must be at least 1, got {self.flood_messages}")
        for name in ("webchat_messages_per_minute", "webchat_new_chats_per_hour", "webchat_chat_kb_per_hour",
                     "webchat_total_mb_per_hour", "webchat_streams"):
            if getattr(self, name) < 1:
                raise SettingsError(f"{name.upper()} must be at least 1, got {getattr(self, name)}")
        for proxy in self.trusted_proxies:
            try:
                ipaddress.ip_address(proxy)
            except ValueError:
                raise SettingsError(f"TRUSTED_PROXIES must be IP addresses separated by commas, got {proxy!r}") from None
        if self.telegram_max_rate <= 0:
            raise SettingsError(f"TELEGRAM_MAX_RATE must be more than 0, got {self.telegram_max_rate}")
        if not 1 <= self.nlu_workers <= 64:
            raise SettingsError(f"NLU_WORKERS must be between 1 and 64, got {self.nlu_workers}")
        if not 0 < self.nlu_deadline <= 60:
            raise SettingsError(f"NLU_DEADLINE must be more than 0 and at most 60 seconds, got {self.nlu_deadline}")
        if self.retention_days < 1:
            raise SettingsError(f"RETENTION_DAYS must be at least 1, got {self.retention_days}")
        if not 0 < self.mastodon_poll_seconds <= 3600:
            raise SettingsError(f"MASTODON_POLL_SECONDS must be more than 0 and at most 3600, got {self.mastodon_poll_seconds}")
        from bot.duty import DutyHours  # local import: duty imports nothing from here

        DutyHours.parse(self.duty_hours, self.timezone)

    @property
    def database(self) -> str | Path:
        """Where the handover log lives: the PostgreSQL URL when set, else the SQLite file."""
        return self.database_url or self.database_path

    @property
    def web_base_url(self) -> str:
        """The address officers open the inbox at."""
        return self.public_url or f"http://{self.web_host}:{self.web_port}"
