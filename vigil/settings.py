"""Django settings for Vigil.

Everything comes from the environment. With nothing set, Vigil runs on embedded
defaults (SQLite, a filesystem Celery broker) in development mode only when
``DJANGO_DEBUG=1``; without it the production rules apply (HTTPS issuer, secrets
required). See README "Configuration" for the full list.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from core.cookie_names import default_prefix, prefixed

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("VIGIL_VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DJANGO_DEBUG")
TESTING = env_bool("VIGIL_TESTING")

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not (DEBUG or TESTING):
        raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off.")
    SECRET_KEY = "dev-insecure-secret-key-only-for-DEBUG-and-tests-0123456789abcdef"
SECRET_KEY_FALLBACKS = env_list("DJANGO_SECRET_KEY_FALLBACKS")

IDP_ISSUER = os.environ.get("IDP_ISSUER", "http://localhost:8000" if (DEBUG or TESTING) else "")
if not IDP_ISSUER:
    raise ImproperlyConfigured("IDP_ISSUER must be set (an https URL) when DJANGO_DEBUG is off.")

if IDP_ISSUER.startswith("http://") and (DEBUG or TESTING):
    # Authlib refuses plain-http requests unless told otherwise; only for a development issuer.
    os.environ.setdefault("AUTHLIB_INSECURE_TRANSPORT", "1")

# Private signing keys and other secrets at rest are encrypted with a key derived from this.
IDP_KEY_ENCRYPTION_SECRET = os.environ.get("IDP_KEY_ENCRYPTION_SECRET", "")
if not IDP_KEY_ENCRYPTION_SECRET:
    if not (DEBUG or TESTING):
        raise ImproperlyConfigured("IDP_KEY_ENCRYPTION_SECRET must be set when DJANGO_DEBUG is off.")
    IDP_KEY_ENCRYPTION_SECRET = "dev-insecure-key-encryption-secret"
IDP_KEY_ENCRYPTION_SECRET_FALLBACKS = env_list("IDP_KEY_ENCRYPTION_SECRET_FALLBACKS")

_issuer_host = IDP_ISSUER.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0]
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS") or [_issuer_host]
if DEBUG or TESTING:
    ALLOWED_HOSTS += ["localhost", "127.0.0.1", "[::1]", "testserver"]

INSTALLED_APPS = [
    "accounts.admin_config.VigilAdminConfig",  # django.contrib.admin, second factor required
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "django_celery_beat",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "accounts",
    "idp",
    "attestation",
    "sessions.apps.DeviceSessionsConfig",
    "core",
    "clients",
    "device_health",  # its token policies run before risk's (registered in ready(), in this order)
    "risk",
    "shared_signals",
    "simulator",  # development tool: the device_demo command
    "ops",  # metrics, /healthz, /readyz, request ids (docs/operations.md "Metrics")
]

# Request ids, request metrics and log lines, and the counting of security events (ops/).
# Off only to measure what they cost (docs/operations.md "Metrics"): the same run, with and without.
VIGIL_OBSERVABILITY = env_bool("VIGIL_OBSERVABILITY", True)
MIDDLEWARE = [
    # Outermost: the request id, metrics and log line of every answer, and the probes
    # (/healthz, /readyz, /metrics) answered before the host check and the HTTPS redirect.
    *(["ops.middleware.ObservabilityMiddleware"] if VIGIL_OBSERVABILITY else []),
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Outside every middleware that reads the database or the cache: 503 while one is down.
    "core.outage.OutageMiddleware",
    "core.http_methods.RefuseUnreadableFormsMiddleware",
    "idp.middleware.RejectNullBytesMiddleware",
    # Sessions, language, user, second factor and messages: for pages; the OAuth endpoints
    # (views marked core.pages_only.api_endpoint) pass through them (issue 19).
    "core.pages_only.PageSessionMiddleware",
    # Language: the page's switcher, then ui_locales, then Accept-Language; the browser's time zone.
    "core.pages_only.PageLanguageMiddleware",
    "django.middleware.common.CommonMiddleware",
    "core.http_methods.RefuseUnsupportedMethodsMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "core.pages_only.PageAuthenticationMiddleware",
    "core.pages_only.PageOTPMiddleware",
    "core.pages_only.PageMessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "vigil.urls"
WSGI_APPLICATION = "vigil.wsgi.application"

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
                "clients.branding.context",  # the tenant theme; "Sign in to <App>"
            ],
        },
    },
]

_default_db = f"sqlite:///{VAR_DIR / 'vigil.sqlite3'}"
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", _default_db),
        conn_max_age=int(os.environ.get("DATABASE_CONN_MAX_AGE", "60")),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Fail fast when PostgreSQL is unreachable (docs/operations.md "Outages"): libpq's default
    # is to wait for the operating system's TCP timeout, minutes on a dropped route.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
        "connect_timeout", int(os.environ.get("DATABASE_CONNECT_TIMEOUT", "3"))
    )
    # Server-side parameter binding, and prepared statements: psycopg prepares a statement once a
    # connection has run it DATABASE_PREPARE_THRESHOLD times (Django turns this off unless
    # asked), so the token endpoint's few fixed statements skip parsing and planning in
    # PostgreSQL. 0 turns it off (a transaction-mode pooler older than PgBouncer 1.21).
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
        "server_side_binding", env_bool("DATABASE_SERVER_SIDE_BINDING", default=True)
    )
    _prepare_threshold = int(os.environ.get("DATABASE_PREPARE_THRESHOLD", "2"))
    DATABASES["default"]["OPTIONS"].setdefault("prepare_threshold", _prepare_threshold or None)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 20
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    # Fail fast when Redis is unreachable (docs/operations.md "Outages"): seconds to connect, to answer.
    CACHES = {
        "default": {
            "BACKEND": "core.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {
                "socket_connect_timeout": float(os.environ.get("REDIS_CONNECT_TIMEOUT", "1")),
                "socket_timeout": float(os.environ.get("REDIS_SOCKET_TIMEOUT", "2")),
            },
        }
    }
elif TESTING:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "OPTIONS": {"MAX_ENTRIES": 100_000}}
    }
else:
    # Shared between processes (web, worker) without any external service.
    CACHES = {
        "default": {
            "BACKEND": "core.database_cache.DatabaseCache",  # Django's, with an atomic incr
            "LOCATION": "vigil_cache",
            # Replay caches (DPoP jti, client assertions) must not be culled early.
            "OPTIONS": {"MAX_ENTRIES": 1_000_000},
        }
    }

AUTH_USER_MODEL = "accounts.User"
# django-otp's own back-off locks a TOTP device or recovery codes for every source, doubling
# without a cap: anyone holding the password could lock the user's second factor for days.
# accounts/throttle.py throttles those guesses per account and source instead.
OTP_TOTP_THROTTLE_FACTOR = 0
OTP_STATIC_THROTTLE_FACTOR = 0
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "accounts:profile"
PASSWORD_HASHERS = [
    "accounts.hashers.VigilArgon2PasswordHasher",
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Cookie names (core/cookie_names.py, core/cookies.py, docs/operations.md "Cookies"): every
# cookie Vigil sets is host-only with Path=/, and Secure under an https issuer; there its default name carries the
# __Host- prefix (RFC 6265bis §4.1.3.2), which browsers accept only from this host over https,
# so a sibling subdomain or a plain-http answer cannot plant one. Under an http issuer
# (development) the names stay bare: browsers refuse a __Host- cookie that is not Secure.
# Each VIGIL_*_COOKIE_NAME (and ACCOUNTS_KNOWN_DEVICE_COOKIE) sets a name as given; system
# checks vigil.E030/E031 refuse a prefix the cookie's attributes would make browsers drop.
_https = IDP_ISSUER.startswith("https://")
VIGIL_COOKIE_NAME_PREFIX = default_prefix(_https)  # follows the issuer; not read from the environment


def _cookie_name(variable: str, name: str) -> str:
    return os.environ.get(variable) or prefixed(name, VIGIL_COOKIE_NAME_PREFIX)


LANGUAGE_CODE = "en"
# The pages' languages (locale/<code>/LC_MESSAGES/django.po, compiled by scripts/compile_translations.py).
LANGUAGES = [("en", "English"), ("de", "Deutsch"), ("es", "Español")]
LOCALE_PATHS = [BASE_DIR / "locale"]
LANGUAGE_COOKIE_NAME = _cookie_name("VIGIL_LANGUAGE_COOKIE_NAME", "vigil_language")
LANGUAGE_COOKIE_SECURE = _https
LANGUAGE_COOKIE_HTTPONLY = True
LANGUAGE_COOKIE_SAMESITE = "Lax"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

# Staff need a second factor for the admin (accounts/admin_site.py); development-only
# exception, honoured only with DJANGO_DEBUG and refused otherwise (check accounts.E005).
VIGIL_ADMIN_ALLOW_SINGLE_FACTOR = env_bool("VIGIL_ADMIN_ALLOW_SINGLE_FACTOR")

# Sessions and cookies: secure unless explicitly in development.
# Database sessions; a write the database fails during an outage is a 503, not a 400 (core.session_store).
SESSION_ENGINE = "core.session_store"
SESSION_COOKIE_NAME = _cookie_name("VIGIL_SESSION_COOKIE_NAME", "vigil_session")
CSRF_COOKIE_NAME = _cookie_name("VIGIL_CSRF_COOKIE_NAME", "vigil_csrftoken")
# The browser's time zone, written by accounts/static/accounts/pages.js (core/locale.py).
VIGIL_TIME_ZONE_COOKIE_NAME = _cookie_name("VIGIL_TIME_ZONE_COOKIE_NAME", "vigil_tz")
# Flash messages ride in a signed cookie until read, in the session when too long (core/flash_messages.py).
MESSAGE_STORAGE = "core.flash_messages.FlashMessageStorage"
VIGIL_MESSAGES_COOKIE_NAME = _cookie_name("VIGIL_MESSAGES_COOKIE_NAME", "vigil_messages")
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = int(os.environ.get("VIGIL_SESSION_COOKIE_AGE", str(12 * 3600)))
SESSION_COOKIE_SECURE = _https
CSRF_COOKIE_SECURE = _https
# No script reads the CSRF cookie (passkeys.js sends the form's token): hidden from scripts too.
CSRF_COOKIE_HTTPONLY = True
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", _https and not DEBUG)
SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_SECURE_HSTS_SECONDS", "31536000" if _https else "0"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = _https
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", False)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if env_bool("DJANGO_BEHIND_TLS_PROXY"):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")

# The client address behind proxies (core/client_address.py, docs/operations.md "Proxies"):
# only X-Forwarded-For entries written by these proxies are believed.
VIGIL_TRUSTED_PROXIES = env_list("VIGIL_TRUSTED_PROXIES")
VIGIL_TRUSTED_PROXY_HOPS = os.environ.get("VIGIL_TRUSTED_PROXY_HOPS", "0")  # checked by vigil.E010
if "VIGIL_TRUST_X_FORWARDED_FOR" in os.environ:
    # It trusted the left-most X-Forwarded-For entry, which any client can write.
    raise ImproperlyConfigured(
        "VIGIL_TRUST_X_FORWARDED_FOR is no longer read: list your proxies in VIGIL_TRUSTED_PROXIES "
        "(addresses or CIDRs, comma-separated) or set VIGIL_TRUSTED_PROXY_HOPS, and unset it."
    )

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["core.api_parsers.JSONParser", "rest_framework.parsers.FormParser"],
    "EXCEPTION_HANDLER": "core.api_errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Vigil API",
    "DESCRIPTION": "",  # the protocol description (idp/openapi_protocol.yaml) brings it
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "core.outage.openapi_unavailable_responses",  # every API may answer 503 in an outage
        "idp.openapi_schema.add_protocol_endpoints",
    ],
}

# Celery: a filesystem broker by default so development needs no external service. It names
# a host (which the transport ignores): kombu warns "No hostname was supplied" at every start
# for a bare "filesystem://" (tests/test_celery_startup.py).
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "filesystem://localhost//")
_broker_dir = VAR_DIR / "celery-broker"
# A message a worker took and never acknowledged (the worker was killed: acks_late) goes back
# to a Redis queue after CELERY_VISIBILITY_TIMEOUT seconds; keep it above the longest task
# (docs/operations.md "Scaling out").
_visibility_timeout = int(os.environ.get("CELERY_VISIBILITY_TIMEOUT", "3600"))
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, Any] = (
    {
        "data_folder_in": str(_broker_dir),
        "data_folder_out": str(_broker_dir),
        "processed_folder": str(_broker_dir),
        "control_folder": str(_broker_dir / "control"),
    }
    if CELERY_BROKER_URL.startswith("filesystem")
    else {
        "visibility_timeout": _visibility_timeout,
        "unacked_restore_interval": max(1, min(10, _visibility_timeout // 4)),
        "unacked_restore_throttle": 1,
    }
    if CELERY_BROKER_URL.startswith(("redis://", "rediss://"))
    else {}
)
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND") or None
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_ACKS_LATE = True
CELERY_TIMEZONE = "UTC"
# Beat writes each entry's last run to the database after every send, so a standby beat that
# takes over (vigil/beat_guard.py) knows what ran (docs/operations.md "Scaling out").
CELERY_BEAT_SYNC_EVERY = 1
# Schedules live in the database (django-celery-beat) so admins edit them in the admin;
# the entries below are installed there on first start.
CELERY_BEAT_SCHEDULER = "vigil.celery_beat:DatabaseScheduler"
# The schedule itself: vigil/schedule.py (every periodic task, one list).

# Operations (docs/operations.md "Metrics", "Logs"; ops/app_settings.py).
# /metrics is closed (404) unless a bearer token or allowed addresses are set.
VIGIL_METRICS_TOKEN = os.environ.get("VIGIL_METRICS_TOKEN", "")
VIGIL_METRICS_ALLOW = env_list("VIGIL_METRICS_ALLOW")
VIGIL_METRICS_MAX_CLIENTS = int(os.environ.get("VIGIL_METRICS_MAX_CLIENTS", "100"))
VIGIL_REQUEST_ID_HEADER = os.environ.get("VIGIL_REQUEST_ID_HEADER", "X-Request-ID")
VIGIL_CELERY_METRICS_PORT = os.environ.get("VIGIL_CELERY_METRICS_PORT", "")
VIGIL_CELERY_METRICS_ADDR = os.environ.get("VIGIL_CELERY_METRICS_ADDR", "127.0.0.1")
# Every log line is one JSON object (core/logging.py); "plain" for the old text lines.
VIGIL_LOG_FORMAT = "plain" if os.environ.get("VIGIL_LOG_FORMAT", "json").strip().lower() == "plain" else "json"


def _log_handler(destination: str, formatter: str) -> dict[str, str]:
    """stderr when empty or "-", else a file (e.g. VIGIL_SECURITY_LOG=var/log/security.jsonl)."""
    if destination and destination != "-":
        return {"class": "logging.FileHandler", "filename": destination, "formatter": formatter}
    return {"class": "logging.StreamHandler", "formatter": formatter}


# One line per request on vigil.request (ops/middleware.py): stderr by default, a file path,
# or "off".
_request_log = os.environ.get("VIGIL_REQUEST_LOG", "")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "core.logging.JsonLineFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": VIGIL_LOG_FORMAT},
        "security": _log_handler(os.environ.get("VIGIL_SECURITY_LOG", ""), "json"),
        "requests": _log_handler("" if _request_log.lower() in {"off", "0"} else _request_log, "json"),
    },
    "loggers": {
        "vigil.security": {"handlers": ["security"], "level": "INFO", "propagate": False},
        "vigil.request": {
            "handlers": ["requests"],
            "level": "WARNING" if _request_log.lower() in {"off", "0"} else "INFO",
            "propagate": False,
        },
        "django.security": {"handlers": ["console"], "level": "WARNING"},
    },
    "root": {"handlers": ["console"], "level": os.environ.get("VIGIL_LOG_LEVEL", "WARNING")},
}

# Per-app settings are read lazily from IDP_*, ACCOUNTS_*, ATTESTATION_*, SESSIONS_* names;
# each app's app_settings.py documents them. Environment overrides for the common ones:
for _name, _value in os.environ.items():
    if _name.startswith(("IDP_", "ACCOUNTS_", "ATTESTATION_", "SESSIONS_")) and _name not in globals():
        globals()[_name] = _value
