"""Settings, read only from environment variables (names shared with one-api/new-api; see README)."""

import os
import re
import secrets
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from gateway_project.env import database_from_dsn, envbool, envfloat, envint, envjson, envlist, envstr

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(envstr("DATA_DIR", str(BASE_DIR / "data")))
VERSION = "0.1.0"


def _session_secret() -> str:
    """SESSION_SECRET, or one generated once and kept in DATA_DIR so restarts keep sessions and secrets."""
    configured = envstr("SESSION_SECRET")
    if configured:
        return configured
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    path = DATA_DIR / "session_secret"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _session_secret()
DEBUG = envbool("DEBUG", False)
ALLOWED_HOSTS = [host.strip() for host in envstr("ALLOWED_HOSTS", "*").split(",") if host.strip()]
CSRF_TRUSTED_ORIGINS = [o.strip() for o in envstr("CSRF_TRUSTED_ORIGINS").split(",") if o.strip()]


def _cors_origins() -> list[str]:
    """CORS_ALLOWED_ORIGINS: `*` (any origin), a comma list of `scheme://host[:port]`, or empty (no CORS)."""
    origins = [origin.strip().rstrip("/") for origin in envstr("CORS_ALLOWED_ORIGINS", "*").split(",")]
    for origin in filter(None, origins):
        if origin != "*" and not re.fullmatch(r"https?://[^/\s]+", origin):
            raise ImproperlyConfigured(f"CORS_ALLOWED_ORIGINS: {origin!r} is not `*` nor an origin like https://host")
    return [origin for origin in origins if origin]


# Browsers may call the relay (/v1/...: key-authenticated, no cookies) from these origins
# (gateway_project.asgi_handlers.RelayCors); admin, console and /api/ never answer CORS.
CORS_ALLOWED_ORIGINS = _cors_origins()

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    # Its templates and static files: /api/docs loads Swagger UI from here (collectstatic), not from a CDN.
    "ninja",
    # Self-service accounts: sign-in, sign-up, email, social sign-in and two-factor (README "Accounts and sign-up").
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.github",
    "allauth.socialaccount.providers.openid_connect",
    "allauth.mfa",
    "gateway_project",  # its management commands: import_oneapi
    "billing",
    "channels_app",
    "relay",
    "tasks",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Serves /static/ (admin and console CSS) from STATIC_ROOT, so `make run` needs no web server in front.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # The language: the console's switch (a cookie), else the browser's Accept-Language, else LANGUAGE_CODE.
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "billing.accounts.staff_2fa.RequireStaff2FA",
]

# Username or email and password, throttled (issue 12); allauth's flow adds the two-factor step after it.
AUTHENTICATION_BACKENDS = ["billing.accounts.login_throttle.ThrottledModelBackend"]
LOGIN_MAX_FAILURES = envint("LOGIN_MAX_FAILURES", 5)
LOGIN_LOCKOUT_SECONDS = envint("LOGIN_LOCKOUT_SECONDS", 300)

# Security headers for the admin and the console (the relay answers JSON and event streams only).
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = envbool("SECURE_COOKIES", False)

ROOT_URLCONF = "gateway_project.urls"
ASGI_APPLICATION = "gateway_project.asgi.application"
AUTH_USER_MODEL = "billing.User"
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "billing.accounts.signup.template_context",
            ],
        },
    },
]

SQL_DSN = envstr("SQL_DSN")
if SQL_DSN and not SQL_DSN.startswith("local"):
    DATABASES = {"default": database_from_dsn(SQL_DSN)}
    # One test database per test process, so that concurrent test runs do not drop each other's.
    DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}_{os.getpid()}"}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": envstr("SQLITE_PATH", str(DATA_DIR / "gateway.sqlite3")),
            # A file, not memory: end-to-end tests serve the test database from a separate process.
            # One per test process, so that concurrent test runs do not share it.
            "TEST": {"NAME": str(DATA_DIR / f"test-{os.getpid()}.sqlite3")},
            "OPTIONS": {
                # IMMEDIATE: a writer takes the lock when its transaction starts, so concurrent quota
                # updates queue on the busy timeout instead of failing with "database is locked".
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
                # wal_autocheckpoint: the web process copies the log back itself, off the request path
                # (gateway_project.db.Checkpoints); this bound only catches other writers.
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA wal_autocheckpoint=10000;",
            },
            "CONN_MAX_AGE": None,
        }
    }
DATABASE_VENDOR = {"django.db.backends.sqlite3": "sqlite", "django.db.backends.postgresql": "postgresql"}.get(
    DATABASES["default"]["ENGINE"], "mysql"
)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_CONN_STRING = envstr("REDIS_CONN_STRING")
SYNC_FREQUENCY = envint("SYNC_FREQUENCY", 60)
MEMORY_CACHE_ENABLED = envbool("MEMORY_CACHE_ENABLED", True)
if REDIS_CONN_STRING:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_CONN_STRING,
            "KEY_PREFIX": envstr("CACHE_KEY_PREFIX", "gw"),
            "TIMEOUT": SYNC_FREQUENCY,
            # Redis is only a cache: while it is down, every cache call misses quickly and the gateway
            # serves from the database (slower; /api/status says cache_ok false).
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.5, "SOCKET_TIMEOUT": 0.5, "IGNORE_EXCEPTIONS": True},
        }
    }
    CACHES["affinity"] = {**CACHES["default"]}  # conversations' channels expire after AFFINITY_TTL
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "TIMEOUT": SYNC_FREQUENCY,
            "OPTIONS": {"MAX_ENTRIES": 100_000},
        },
        # Apart from the rest, so that a flood of made-up session ids evicts only other sessions (least
        # recently used first), never a key's authentication or a snapshot's version.
        "affinity": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "affinity",
            "OPTIONS": {"MAX_ENTRIES": envint("AFFINITY_MAX_ENTRIES", 100_000)},
        },
    }

LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
LANGUAGE_CODE = envstr("LANGUAGE_CODE", "en").strip().lower().replace("_", "-")
if LANGUAGE_CODE not in dict(LANGUAGES):
    raise ImproperlyConfigured(f"LANGUAGE_CODE must be one of {', '.join(dict(LANGUAGES))}, not {LANGUAGE_CODE!r}")
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = envstr("TZ", "UTC")
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "console:home"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": envstr("LOG_LEVEL", "INFO")},
    "loggers": {"httpx": {"level": "WARNING"}, "daphne": {"level": "WARNING"}},
}

# Relay behaviour (defaults as in one-api/new-api unless the README says otherwise).
RETRY_TIMES = envint("RETRY_TIMES", 3)
STREAMING_TIMEOUT = envfloat("STREAMING_TIMEOUT", 30)
RELAY_CONNECT_TIMEOUT = envfloat("RELAY_CONNECT_TIMEOUT", 10)
RELAY_TIMEOUT = envfloat("RELAY_TIMEOUT", 300)
RELAY_MAX_CONNECTIONS = envint("RELAY_MAX_CONNECTIONS", 4096)
RELAY_MAX_BODY_BYTES = envint("RELAY_MAX_BODY_BYTES", 32 * 1024 * 1024)
# Admin, console and the management API take small forms and JSON only.
SITE_MAX_BODY_BYTES = envint("SITE_MAX_BODY_BYTES", 1024 * 1024)
MAX_UPSTREAM_RESPONSE_BYTES = envint("MAX_UPSTREAM_RESPONSE_BYTES", 64 * 1024 * 1024)
# Bodies are refused as they arrive by gateway_project.asgi_handlers.BodyLimit, at each path's own limit; Django's
# check behind it must let the largest of them through.
DATA_UPLOAD_MAX_MEMORY_SIZE = max(RELAY_MAX_BODY_BYTES, SITE_MAX_BODY_BYTES)
FORCE_STREAM_OPTION = envbool("FORCE_STREAM_OPTION", True)
GET_MEDIA_TOKEN = envbool("GET_MEDIA_TOKEN", True)
GET_MEDIA_TOKEN_NOT_STREAM = envbool("GET_MEDIA_TOKEN_NOT_STREAM", True)
# Image URLs are fetched (to count their tokens) from public addresses only, unless this is true (SSRF guard).
IMAGE_FETCH_ALLOW_PRIVATE = envbool("IMAGE_FETCH_ALLOW_PRIVATE", False)
# Bounds on sizing a request's images (relay.media): how many, their pixels in all, and the URL fetches.
IMAGE_MAX_COUNT = envint("IMAGE_MAX_COUNT", 500)
IMAGE_MAX_PIXELS = envint("IMAGE_MAX_PIXELS", 1_000_000_000)
IMAGE_FETCH_CONCURRENCY = envint("IMAGE_FETCH_CONCURRENCY", 4)
IMAGE_FETCH_TIMEOUT = envfloat("IMAGE_FETCH_TIMEOUT", 10)
PRE_CONSUMED_TOKENS = envint("PRE_CONSUMED_TOKENS", 500)
RATE_LIMITS = envjson("RATE_LIMITS", {})
RESERVATION_STALE_SECONDS = envint("RESERVATION_STALE_SECONDS", 3600)
# Answer before the charge is committed, with the charge in a journal on the host's disk (billing.journal).
SETTLE_AFTER_ANSWER = envbool("SETTLE_AFTER_ANSWER", True)
SETTLEMENT_JOURNAL_DIR = Path(envstr("SETTLEMENT_JOURNAL_DIR", str(DATA_DIR / "journal")))
DIFY_DEBUG = envbool("DIFY_DEBUG", True)
UPDATE_TASK = envbool("UPDATE_TASK", True)
GEMINI_MODEL_MAP = envstr("GEMINI_MODEL_MAP")
GEMINI_SAFETY_SETTING = envstr("GEMINI_SAFETY_SETTING", "BLOCK_NONE")
COHERE_SAFETY_SETTING = envstr("COHERE_SAFETY_SETTING", "NONE")

CELERY_BROKER_URL = envstr("CELERY_BROKER_URL", REDIS_CONN_STRING)
CELERY_TASK_ALWAYS_EAGER = False
RECONCILE_INTERVAL = envint("RECONCILE_INTERVAL", 60)
CHANNEL_FAILURE_THRESHOLD = envint("CHANNEL_FAILURE_THRESHOLD", 3)
CHANNEL_COOLDOWN_SECONDS = envfloat("CHANNEL_COOLDOWN_SECONDS", 30)
CHANNEL_TEST_FREQUENCY = envint("CHANNEL_TEST_FREQUENCY", 0)
# Channel affinity (channels_app.affinity): where a request's conversation identity may come from, and how long
# after its last use a conversation keeps its channel. Each group may name its own sources (the price table's
# group_affinity); an empty list, or AFFINITY_TTL=0, turns it off.
AFFINITY_SOURCE_NAMES = ("X-Session-Id", "prompt_cache_key", "metadata.user_id")
AFFINITY_SOURCES = envlist("AFFINITY_SOURCES", AFFINITY_SOURCE_NAMES, allowed=AFFINITY_SOURCE_NAMES)
AFFINITY_TTL = envint("AFFINITY_TTL", 3600)
METRICS_TOKEN = envstr("METRICS_TOKEN")
METRICS_ALLOW_IPS = [
    net.strip() for net in envstr("METRICS_ALLOW_IPS", "127.0.0.1/32,::1/128").split(",") if net.strip()
]
TASK_RUNNER = "celery" if CELERY_BROKER_URL else "embedded"

# Asynchronous tasks (Midjourney, Suno): submit and poll timeouts, the poller's schedule, notify callbacks.
TASK_POLL_INTERVAL = envint("TASK_POLL_INTERVAL", 15)
TASK_TIMEOUT_SECONDS = envint("TASK_TIMEOUT_SECONDS", 3600)
TASK_POLL_BATCH = envint("TASK_POLL_BATCH", 500)
TASK_SUBMIT_TIMEOUT = envfloat("TASK_SUBMIT_TIMEOUT", 60)
TASK_FETCH_TIMEOUT = envfloat("TASK_FETCH_TIMEOUT", 15)
MJ_ACTION_CHECK_SUCCESS = envbool("MJ_ACTION_CHECK_SUCCESS", True)
SERVER_ADDRESS = envstr("SERVER_ADDRESS").rstrip("/")

# WeChat Pay (API v3, Native) top-up. Payments are enabled only when every merchant setting is present (see README);
# secrets may come from NAME_FILE. Verification: WECHATPAY_PUBLIC_KEY + _ID, or platform certificates in CERT_DIR.
WECHATPAY_MCHID = envstr("WECHATPAY_MCHID")
WECHATPAY_APPID = envstr("WECHATPAY_APPID")
WECHATPAY_PRIVATE_KEY = envstr("WECHATPAY_PRIVATE_KEY")
WECHATPAY_CERT_SERIAL_NO = envstr("WECHATPAY_CERT_SERIAL_NO")
WECHATPAY_APIV3_KEY = envstr("WECHATPAY_APIV3_KEY")
WECHATPAY_NOTIFY_URL = envstr("WECHATPAY_NOTIFY_URL")
WECHATPAY_PUBLIC_KEY = envstr("WECHATPAY_PUBLIC_KEY")
WECHATPAY_PUBLIC_KEY_ID = envstr("WECHATPAY_PUBLIC_KEY_ID")
WECHATPAY_CERT_DIR = envstr("WECHATPAY_CERT_DIR")
WECHATPAY_API_BASE = envstr("WECHATPAY_API_BASE", "https://api.mch.weixin.qq.com").rstrip("/")
TOPUP_QUOTA_PER_YUAN = envint("TOPUP_QUOTA_PER_YUAN", 68_493)  # QUOTA_PER_UNIT (500 000 = 1 USD) / 7.3 CNY per USD
TOPUP_MIN_YUAN = envint("TOPUP_MIN_YUAN", 1)

# Log growth: request logs older than LOG_RETENTION_DAYS days are deleted daily (0 = keep forever); the daily
# usage aggregate keeps their totals. LOG_CLEANUP_INTERVAL is how often that job runs, in seconds.
LOG_RETENTION_DAYS = envint("LOG_RETENTION_DAYS", 0)
LOG_CLEANUP_INTERVAL = envint("LOG_CLEANUP_INTERVAL", 24 * 3600)

# Accounts (django-allauth): sign-in by username or email, sign-up, email verification, password reset, social
# sign-in and two-factor. README "Accounts and sign-up" describes every variable.
REGISTER_ENABLED = envbool("REGISTER_ENABLED", False)
EMAIL_VERIFICATION_REQUIRED = envbool("EMAIL_VERIFICATION_REQUIRED", True)
EMAIL_DOMAIN_WHITELIST = [d.strip().lower().lstrip("@") for d in envstr("EMAIL_DOMAIN_WHITELIST").split(",")]
EMAIL_DOMAIN_WHITELIST = [domain for domain in EMAIL_DOMAIN_WHITELIST if domain]
QUOTA_FOR_NEW_USER = envint("QUOTA_FOR_NEW_USER", 0)
QUOTA_FOR_INVITER = envint("QUOTA_FOR_INVITER", 0)
QUOTA_FOR_INVITEE = envint("QUOTA_FOR_INVITEE", 0)
REQUIRE_STAFF_2FA = envbool("REQUIRE_STAFF_2FA", False)
TURNSTILE_SITE_KEY = envstr("TURNSTILE_SITE_KEY")
TURNSTILE_SECRET_KEY = envstr("TURNSTILE_SECRET_KEY")
if bool(TURNSTILE_SITE_KEY) != bool(TURNSTILE_SECRET_KEY):
    raise ImproperlyConfigured("Turnstile needs both TURNSTILE_SITE_KEY and TURNSTILE_SECRET_KEY (or neither)")
TURNSTILE_VERIFY_URL = envstr("TURNSTILE_VERIFY_URL", "https://challenges.cloudflare.com/turnstile/v0/siteverify")

ACCOUNT_ADAPTER = "billing.accounts.signup.AccountAdapter"
SOCIALACCOUNT_ADAPTER = "billing.accounts.signup.SocialAccountAdapter"
ACCOUNT_FORMS = {"login": "billing.accounts.forms.LoginForm", "signup": "billing.accounts.forms.SignupForm"}
ACCOUNT_LOGIN_METHODS = {"username", "email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "username*", "password1*", "password2*"]
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_EMAIL_VERIFICATION = "mandatory" if EMAIL_VERIFICATION_REQUIRED else "optional"
ACCOUNT_CONFIRM_EMAIL_ON_GET = False
ACCOUNT_LOGOUT_REDIRECT_URL = "account_login"
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[LLM gateway] "
# Links in mails: SERVER_ADDRESS's scheme (the gateway behind a TLS proxy), else the request's.
ACCOUNT_DEFAULT_HTTP_PROTOCOL = "https" if SERVER_ADDRESS.startswith("https:") or SESSION_COOKIE_SECURE else "http"
# Failed sign-ins are counted by the backend (LOGIN_MAX_FAILURES), not a second time by allauth.
ACCOUNT_RATE_LIMITS = {"login_failed": False}
SOCIALACCOUNT_LOGIN_ON_GET = False
MFA_ADAPTER = "allauth.mfa.adapter.DefaultMFAAdapter"
MFA_FORMS = {"authenticate": "billing.accounts.forms.AuthenticateForm"}
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes", "webauthn"]
MFA_PASSKEY_LOGIN_ENABLED = True
MFA_TOTP_ISSUER = envstr("MFA_TOTP_ISSUER", "LLM gateway")
# A code of the period before or after is accepted too: phones whose clocks are a few seconds off still work.
MFA_TOTP_TOLERANCE = 1
# Passkeys need a secure origin; `make run` on http://localhost is one, DEBUG lets any plain-HTTP host try.
MFA_WEBAUTHN_ALLOW_INSECURE_ORIGIN = DEBUG


def _social_apps() -> dict:
    """GitHub and one OpenID Connect provider from the environment (SOCIALACCOUNT_PROVIDERS' APPS: no database
    row); admin's Social applications add more."""
    providers: dict = {}
    app: dict
    if envstr("GITHUB_CLIENT_ID"):
        app = {"client_id": envstr("GITHUB_CLIENT_ID"), "secret": envstr("GITHUB_CLIENT_SECRET")}
        providers["github"] = {"APPS": [app], "SCOPE": ["user:email"]}
    if envstr("OIDC_CLIENT_ID"):
        if not envstr("OIDC_SERVER_URL"):
            raise ImproperlyConfigured("OIDC_CLIENT_ID needs OIDC_SERVER_URL (the issuer, e.g. https://id.example.com)")
        app = {
            "provider_id": envstr("OIDC_PROVIDER_ID", "sso"),
            "name": envstr("OIDC_NAME", "OpenID Connect"),
            "client_id": envstr("OIDC_CLIENT_ID"),
            "secret": envstr("OIDC_CLIENT_SECRET"),
            "settings": {"server_url": envstr("OIDC_SERVER_URL")},
        }
        providers["openid_connect"] = {"APPS": [app]}
    return providers


SOCIALACCOUNT_PROVIDERS = _social_apps()

# Mail (verification, password reset): one-api's SMTP_* names; SSL on port 465, STARTTLS on any other. Without
# SMTP_SERVER mails are written to the log (what `make run` gets).
SMTP_SERVER = envstr("SMTP_SERVER")
if SMTP_SERVER:
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_HOST = SMTP_SERVER
    EMAIL_PORT = envint("SMTP_PORT", 587)
    EMAIL_HOST_USER = envstr("SMTP_ACCOUNT")
    EMAIL_HOST_PASSWORD = envstr("SMTP_TOKEN")
    EMAIL_USE_SSL = EMAIL_PORT == 465
    EMAIL_USE_TLS = not EMAIL_USE_SSL
    EMAIL_TIMEOUT = 10
else:
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
DEFAULT_FROM_EMAIL = envstr("SMTP_FROM") or envstr("SMTP_ACCOUNT") or "gateway@localhost"
