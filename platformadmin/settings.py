"""Settings, read from the environment through django-environ.

Every variable is documented in `.env.example`. With no environment at all the
console refuses to start only for what cannot be defaulted safely: a SECRET_KEY
when DEBUG is off, and the encryption key ring (see keys/crypto.py).
"""

from __future__ import annotations

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(environ.Env().str("CONSOLE_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)  # SQLite file, file cache, local Celery queue

env = environ.Env()
# A local .env (written by `make run`) is read if present; real environment wins.
if (BASE_DIR / ".env").exists() and env.bool("CONSOLE_READ_DOTENV", default=True):
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)

if DEBUG:
    SECRET_KEY = env.str("SECRET_KEY", default="insecure-dev-only-key-change-me-" + "x" * 32)
else:
    try:
        SECRET_KEY = env.str("SECRET_KEY")
    except ImproperlyConfigured as exc:
        raise ImproperlyConfigured(
            "SECRET_KEY is required when DEBUG is off. Generate one with "
            "`python -c 'import secrets; print(secrets.token_urlsafe(50))'` and export it."
        ) from exc

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "axes",
    "django_otp",
    "platformadmin",
    "orgs",
    "platformadmin.notifications",
    "keys",
    "usage",
    "platformadmin.sync",
]

MIDDLEWARE = [
    # First: everything below reads REMOTE_ADDR (see orgs/lockout.py).
    "orgs.lockout.TrustedProxyMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Content-Security-Policy and Permissions-Policy headers on every response.
    "csp.middleware.CSPMiddleware",
    "django_permissions_policy.PermissionsPolicyMiddleware",
    # Bearer-token API views skip the rest of the stack (see usage/middleware.py).
    "usage.middleware.ApiShortPathMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    # Users with a TOTP device enter a code before any page (see orgs/otp.py).
    "orgs.otp.OTPRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # Idle timeout and absolute lifetime of signed-in sessions (orgs/session_timeout.py).
    "orgs.session_timeout.SessionTimeoutMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Axes must be last: it turns lockouts into responses.
    "axes.middleware.AxesMiddleware",
]

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "platformadmin.urls"
WSGI_APPLICATION = "platformadmin.wsgi.application"
ASGI_APPLICATION = "platformadmin.asgi.application"

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
                "platformadmin.context_processors.console",
            ],
        },
    },
]

# Database: SQLite file by default, PostgreSQL in production (DATABASE_URL).
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {})
    DATABASES["default"]["OPTIONS"].setdefault("timeout", 20)
    DATABASES["default"]["OPTIONS"].setdefault(
        "init_command", "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
    )
    DATABASES["default"]["OPTIONS"].setdefault("transaction_mode", "IMMEDIATE")
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and env.bool(
    "DB_POOL", default=True
):
    # Under ASGI Django runs each request's sync code on a fresh thread, and connections
    # are per thread: without a pool every request would open a PostgreSQL connection.
    # psycopg's pool (Django's built-in support) hands them out instead.
    DATABASES["default"].setdefault("OPTIONS", {})
    DATABASES["default"]["OPTIONS"]["pool"] = {
        "min_size": env.int("DB_POOL_MIN_SIZE", default=2),
        "max_size": env.int("DB_POOL_MAX_SIZE", default=20),
        "timeout": env.float("DB_POOL_TIMEOUT", default=10.0),
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # the pool keeps connections; Django must not
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DB_CONN_MAX_AGE", default=60))
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Cache: shared across processes (rate limits, circuit breaker). Redis in production;
# a file cache in the embedded default so web, worker and beat still share it.
CACHES = {
    "default": env.cache_url("CACHE_URL", default=f"filecache://{VAR_DIR / 'cache'}"),
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(VAR_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = DEBUG

# Email: console backend by default, SMTP via EMAIL_URL (smtp+tls://user:pass@host:587).
# Django 6.1 configures mail through MAILERS; EMAIL_URL is translated into it.
_email = env.email_url("EMAIL_URL", default="consolemail://")
_email_options = {}
if _email["EMAIL_BACKEND"].endswith("smtp.EmailBackend"):
    _email_options = {
        "host": _email.get("EMAIL_HOST"),
        "port": _email.get("EMAIL_PORT"),
        "username": _email.get("EMAIL_HOST_USER") or None,
        "password": _email.get("EMAIL_HOST_PASSWORD") or None,
        "use_tls": bool(_email.get("EMAIL_USE_TLS")),
        "use_ssl": bool(_email.get("EMAIL_USE_SSL")),
        "timeout": 10,
    }
elif _email.get("EMAIL_FILE_PATH"):
    _email_options = {"file_path": _email["EMAIL_FILE_PATH"]}
MAILERS = {"default": {"BACKEND": _email["EMAIL_BACKEND"], "OPTIONS": _email_options}}
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="console@localhost")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- Secrets at rest ------------------------------------------------------------
# FIELD_ENCRYPTION_KEYS: comma-separated "vN:<urlsafe base64 of 32 bytes>", newest
# first. Parsed and validated at startup by keys.crypto (see keys/apps.py).
FIELD_ENCRYPTION_KEYS = env.str("FIELD_ENCRYPTION_KEYS", default="")
# Key for the keyed fingerprints of API keys (duplicate detection). Defaults to a
# value derived from SECRET_KEY; set it explicitly to rotate SECRET_KEY freely.
SECRET_FINGERPRINT_KEY = env.str("SECRET_FINGERPRINT_KEY", default="")
# Turns on a clear startup error instead of a lazy one; tests switch it off to
# exercise the error path themselves.
FIELD_ENCRYPTION_CHECK_AT_STARTUP = env.bool("FIELD_ENCRYPTION_CHECK_AT_STARTUP", default=True)
# Error pages and error e-mails hide secrets with DEBUG on or off (by name, by shape,
# and by value for the request's own credentials): see platformadmin/redaction.py.
DEFAULT_EXCEPTION_REPORTER_FILTER = "platformadmin.redaction.SecretRedactingReporterFilter"
DEFAULT_EXCEPTION_REPORTER = "platformadmin.redaction.SecretRedactingExceptionReporter"

# --- Celery -----------------------------------------------------------------------
# The whole Celery configuration is here, in one place (README "Workers and beat").
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
# Redis (and SQS) hand a message not acknowledged within this many seconds to another
# worker. Our tasks are acknowledged late (when they finish), and a task sent with a
# countdown or ETA stays unacknowledged in a worker until it runs: so this must be longer
# than the longest task run (hard time limit) and than every countdown or ETA we use, or
# the message is delivered twice. Checked at startup (CELERY_COUNTDOWN_CAPS, end of this
# file) and by tests/foundation/test_celery_config.py. After a worker dies, its unfinished
# messages come back only after this long (the notification sweep recovers sooner).
CELERY_VISIBILITY_TIMEOUT = env.int("CELERY_VISIBILITY_TIMEOUT", default=2 * 3600)
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_VISIBILITY_TIMEOUT}
if CELERY_BROKER_URL.startswith("filesystem://"):
    _queue_dir = VAR_DIR / "celery" / "queue"
    CELERY_BROKER_TRANSPORT_OPTIONS |= {
        "data_folder_in": str(_queue_dir),
        "data_folder_out": str(_queue_dir),
        "processed_folder": str(VAR_DIR / "celery" / "processed"),
        "control_folder": str(VAR_DIR / "celery" / "control"),
        "store_processed": False,
    }
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default=None) or None
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
# Defaults for every task (each of ours also sets its own): the soft limit raises
# SoftTimeLimitExceeded in the task so it can stop cleanly; the hard limit kills it.
CELERY_TASK_TIME_LIMIT = 300
CELERY_TASK_SOFT_TIME_LIMIT = 240
# Our tasks are idempotent by construction (they take ids; unique rows, claim-by-update),
# so running one twice is safe and losing one is not: acknowledge after the run, and put
# a task back on the queue when its worker process dies mid-run (SIGKILL, out of memory).
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# Every periodic schedule lives here, in one place. Run exactly one beat (README "Workers
# and beat"); a second one doubles the sends but every periodic task is idempotent, so
# nothing is sent twice. "expires": a run still queued when the next one is due is dropped
# instead of piling up behind a stopped worker.
CELERY_BEAT_SCHEDULE: dict = {
    # Delete raw usage records older than USAGE_RAW_RETENTION_DAYS (rollups stay).
    "usage-records-purge": {"task": "usage.tasks.usage_records_purge", "schedule": 3600.0},
    # The Admin API hierarchy pull (platformadmin/sync/pull.py): one task per organization
    # with an admin key; a pull with nothing changed upstream writes nothing.
    "sync-hierarchy-pull": {
        "task": "sync.hierarchy_pull_all",
        "schedule": 3600.0,
        "options": {"expires": 3000},
    },
    # Budgets (usage/budgets.py): evaluate every active budget, catching what a lost
    # evaluation task missed; alerts are unique per budget, period and threshold.
    "budgets-sweep": {
        "task": "usage.budgets_sweep",
        "schedule": 900.0,
        "options": {"expires": 800},
    },
    # Hard-limit reservations settled or expired over BUDGET_RESERVATION_RETENTION_DAYS ago
    # (usage/reservations.py); an open unexpired one is never touched.
    "budget-reservations-purge": {
        "task": "usage.budget_reservations_purge",
        "schedule": 3600.0,
        "options": {"expires": 3000},
    },
    # The notification outbox (platformadmin/notifications): queue due retries and rows a
    # killed worker left "sending" past their lease; a row is claimed once however queued.
    "notifications-sweep": {
        "task": "notifications.notifications_sweep",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    # Rotation reminders (keys/reminders.py): stages are calendar days, so hourly is ample.
    "rotation-reminders-scan": {
        "task": "keys.rotation_reminders_scan",
        "schedule": 3600.0,
        "options": {"expires": 3000},
    },
    # OpenAI's usage and costs (platformadmin/sync): the last OPENAI_USAGE_PULL_DAYS days
    # replaced per organization, then reconciled; a gap on a closed day is notified once.
    # Automated rotation of service-account keys (platformadmin/sync/rotation.py): resume
    # open rotations, delete old keys after their grace, start rotations of due keys.
    "sync-rotations-tick": {
        "task": "sync.rotations_tick",
        "schedule": 600.0,
        "options": {"expires": 540},
    },
    "sync-usage-pull": {
        "task": "sync.usage_pull_all",
        "schedule": 6 * 3600.0,
        "options": {"expires": 3 * 3600},
    },
    # OpenAI's audit log into the console's (platformadmin/sync/audit.py), one task per org.
    "sync-audit-log-pull": {
        "task": "sync.audit_log_pull_all",
        "schedule": 900.0,
        "options": {"expires": 800},
    },
}

# --- Usage capture -----------------------------------------------------------------
# Raw usage records older than this are deleted by a periodic task (hourly rollups
# stay); records older than this are refused by the ingestion API. 0 keeps them forever.
USAGE_RAW_RETENTION_DAYS = env.int("USAGE_RAW_RETENTION_DAYS", default=400)
USAGE_INGEST_MAX_BYTES = env.int("USAGE_INGEST_MAX_BYTES", default=4 * 1024 * 1024)  # 413 above
USAGE_INGEST_MAX_RECORDS = env.int("USAGE_INGEST_MAX_RECORDS", default=1000)  # per request
USAGE_INGEST_RATE_PER_MINUTE = env.int(
    "USAGE_INGEST_RATE_PER_MINUTE", default=1200
)  # per token; 429
# Unknown ingestion tokens per client address per minute before 429 (guessing); 0 = off.
USAGE_INGEST_FAILED_AUTH_PER_MINUTE = env.int("USAGE_INGEST_FAILED_AUTH_PER_MINUTE", default=30)

# --- Notifications (platformadmin/notifications, docs/notifications.md) -----------
# Hard time limit (seconds) of one delivery task; the soft limit is 10 s less.
NOTIFICATION_DELIVERY_TIME_LIMIT = env.int("NOTIFICATION_DELIVERY_TIME_LIMIT", default=60)
# A row left "sending" by a killed worker is claimed again after this many seconds; longer
# than the hard time limit, so a live attempt is never taken over.
NOTIFICATION_CLAIM_LEASE_SECONDS = env.int("NOTIFICATION_CLAIM_LEASE_SECONDS", default=180)
if NOTIFICATION_CLAIM_LEASE_SECONDS <= NOTIFICATION_DELIVERY_TIME_LIMIT:
    raise ImproperlyConfigured(
        "NOTIFICATION_CLAIM_LEASE_SECONDS must be longer than NOTIFICATION_DELIVERY_TIME_LIMIT "
        "(a delivery still running must not be claimed a second time)."
    )
# Retries: base x 2^(attempt-1) seconds, capped; given up after this many attempts.
NOTIFICATION_RETRY_BASE_SECONDS = env.int("NOTIFICATION_RETRY_BASE_SECONDS", default=30)
NOTIFICATION_RETRY_MAX_SECONDS = env.int("NOTIFICATION_RETRY_MAX_SECONDS", default=3600)
NOTIFICATION_MAX_ATTEMPTS = env.int("NOTIFICATION_MAX_ATTEMPTS", default=8)
# A channel is flagged "failing" on its page after this many consecutive failed attempts.
NOTIFICATION_CHANNEL_FAILING_AFTER = env.int("NOTIFICATION_CHANNEL_FAILING_AFTER", default=3)
# Seconds a webhook, Slack or apprise request may take (connect and read).
NOTIFICATION_HTTP_TIMEOUT_SECONDS = env.float("NOTIFICATION_HTTP_TIMEOUT_SECONDS", default=10.0)

# --- Budget hard limit (usage/reservations.py) ------------------------------------
# Seconds a console call's budget reservation holds if its process dies mid-call (longer
# for a project whose timeout x retries is longer); then it stops counting.
BUDGET_RESERVATION_TTL_SECONDS = env.int("BUDGET_RESERVATION_TTL_SECONDS", default=900)
# Milliseconds a call waits for a budget row other transactions hold (PostgreSQL
# lock_timeout; concurrent calls of one budget queue there) before it is refused as
# "budget state cannot be read" (fail closed).
BUDGET_LOCK_TIMEOUT_MS = env.int("BUDGET_LOCK_TIMEOUT_MS", default=5000)
# Days a settled or expired reservation is kept before the hourly purge deletes it; 0 keeps.
BUDGET_RESERVATION_RETENTION_DAYS = env.int("BUDGET_RESERVATION_RETENTION_DAYS", default=7)

# --- Budgets ---------------------------------------------------------------------
# Seconds usage gathers before one evaluation of a budget runs (the task's countdown): a
# burst of batches is one evaluation, and an alert is at most this late.
BUDGET_EVALUATION_DELAY_SECONDS = env.int("BUDGET_EVALUATION_DELAY_SECONDS", default=5)
# Seconds (beyond the countdown) a queued evaluation keeps others from queueing; if its
# task is lost, the next one queues after this long (and the sweep runs every 15 min).
BUDGET_EVALUATION_FLAG_SECONDS = env.int("BUDGET_EVALUATION_FLAG_SECONDS", default=300)

# --- Sign-in throttling (django-axes) ---------------------------------------------
# Three locks, each with its own limit (orgs/lockout.py): an account from one address
# (AXES_FAILURE_LIMIT), an account from any address, an address over any accounts.
# Every lock lifts by itself after the cool-off; a password reset lifts the account's.
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
SIGNIN_ACCOUNT_FAILURE_LIMIT = env.int("SIGNIN_ACCOUNT_FAILURE_LIMIT", default=10)
SIGNIN_ADDRESS_FAILURE_LIMIT = env.int("SIGNIN_ADDRESS_FAILURE_LIMIT", default=20)
if min(SIGNIN_ACCOUNT_FAILURE_LIMIT, SIGNIN_ADDRESS_FAILURE_LIMIT) <= AXES_FAILURE_LIMIT:
    raise ImproperlyConfigured(
        "SIGNIN_ACCOUNT_FAILURE_LIMIT and SIGNIN_ADDRESS_FAILURE_LIMIT must be higher than "
        "AXES_FAILURE_LIMIT (the limit for one account from one address)."
    )
AXES_COOLOFF_TIME = env.float("AXES_COOLOFF_MINUTES", default=15) / 60  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"], "username", "ip_address"]
AXES_HANDLER = "orgs.lockout.LockoutHandler"
AXES_RESET_ON_SUCCESS = True  # only that account's failures from that address (lockout.py)
# Proxies whose X-Forwarded-For is believed (addresses or CIDR ranges, comma-separated);
# REMOTE_ADDR is rewritten for them only (orgs.lockout.TrustedProxyMiddleware).
TRUSTED_PROXY_IPS = env.list("TRUSTED_PROXY_IPS", default=[])
# Failures while locked do not extend the lock: it always lifts after the cool-off.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_SENSITIVE_PARAMETERS = ["password", "new_secret", "secret"]
AXES_IPWARE_META_PRECEDENCE_ORDER = ["REMOTE_ADDR"]
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"

# Password reset requests per client address and per target e-mail in a window (shared
# cache); over a limit the page answers the same and sends nothing (orgs/views_auth.py).
PASSWORD_RESET_LIMIT_PER_ADDRESS = env.int("PASSWORD_RESET_LIMIT_PER_ADDRESS", default=10)
PASSWORD_RESET_LIMIT_PER_EMAIL = env.int("PASSWORD_RESET_LIMIT_PER_EMAIL", default=3)
PASSWORD_RESET_THROTTLE_WINDOW_MINUTES = env.int(
    "PASSWORD_RESET_THROTTLE_WINDOW_MINUTES", default=60
)

# --- Sessions -----------------------------------------------------------------------
# Signed out after this many seconds without a request (a working day), and this many
# after sign-in whatever happens (orgs/session_timeout.py). The cookie lasts as long.
SESSION_IDLE_TIMEOUT = env.int("SESSION_IDLE_TIMEOUT", default=8 * 3600)
SESSION_ABSOLUTE_LIFETIME = env.int("SESSION_ABSOLUTE_LIFETIME", default=7 * 24 * 3600)
if not 60 <= SESSION_IDLE_TIMEOUT <= SESSION_ABSOLUTE_LIFETIME:
    raise ImproperlyConfigured(
        "SESSION_IDLE_TIMEOUT must be at least 60 seconds and at most SESSION_ABSOLUTE_LIFETIME."
    )
SESSION_COOKIE_AGE = SESSION_ABSOLUTE_LIFETIME

# --- Two-factor -------------------------------------------------------------------
OTP_REQUIRED_FOR_ORG_OWNERS = env.bool("OTP_REQUIRED_FOR_ORG_OWNERS", default=False)
# Failed codes double the wait before the next try (django-otp throttling).
OTP_TOTP_THROTTLE_FACTOR = 1

# --- Invitations ------------------------------------------------------------------
# Members join by invitation only; the one-time link in the e-mail expires after this.
INVITATION_EXPIRY_DAYS = env.int("INVITATION_EXPIRY_DAYS", default=7)

# --- Organizations ----------------------------------------------------------------
# Who gets "New organization": superusers always; every signed-in user when this is on.
ORG_CREATION_OPEN_TO_ALL = env.bool("ORG_CREATION_OPEN_TO_ALL", default=False)

# --- OpenAI client layer ----------------------------------------------------------
# Base URL of the bundled OpenAI simulator, when one runs (make run); keys pointing
# there are labelled "simulator" in the UI.
OPENAI_SIMULATOR_URL = env.str("OPENAI_SIMULATOR_URL", default="")
# Requests the server makes to user-given URLs (key base URLs, Azure endpoints) go only
# to public addresses, checked on the resolved address at connect time, no redirects
# (platformadmin/netguard.py); except these exact origins, scheme://host[:port]
# comma-separated (`make run` lists the bundled simulator's).
OUTBOUND_ALLOWED_ORIGINS = env.list("OUTBOUND_ALLOWED_ORIGINS", default=[])
# Circuit breaker per (base URL, key), state in the cache above (platformadmin/openai/breaker.py):
# opens after this many consecutive transient failures, half-opens after the cool-down.
OPENAI_BREAKER_FAILURE_THRESHOLD = env.int("OPENAI_BREAKER_FAILURE_THRESHOLD", default=5)
OPENAI_BREAKER_COOLDOWN_SECONDS = env.float("OPENAI_BREAKER_COOLDOWN_SECONDS", default=30.0)

# --- Admin API sync (platformadmin/openai/admin.py, platformadmin/sync/) ----------------
# Timeouts of every Admin API call; reads may be retried by the SDK this many times,
# creates never (no idempotency key: a retried create could make a second object).
OPENAI_ADMIN_TIMEOUT_SECONDS = env.float("OPENAI_ADMIN_TIMEOUT_SECONDS", default=30.0)
OPENAI_ADMIN_CONNECT_TIMEOUT_SECONDS = env.float(
    "OPENAI_ADMIN_CONNECT_TIMEOUT_SECONDS", default=5.0
)
OPENAI_ADMIN_READ_RETRIES = env.int("OPENAI_ADMIN_READ_RETRIES", default=2)
# Reconciliation: a project and day whose logged cost falls below OpenAI's by more than
# this share (and this many dollars) is flagged and notified (an application not reporting).
RECONCILIATION_GAP_PERCENT = env.int("RECONCILIATION_GAP_PERCENT", default=5)
RECONCILIATION_GAP_MIN_USD = env.str("RECONCILIATION_GAP_MIN_USD", default="0.01")
# Days pulled from OpenAI's usage and costs on each run (today and yesterday are provisional).
OPENAI_USAGE_PULL_DAYS = env.int("OPENAI_USAGE_PULL_DAYS", default=7)

# --- Production hardening (applies whenever DEBUG is off) --------------------------
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
if not DEBUG:
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# No inline script or style on any page (django-csp 4.x): the console's CSS and JS are
# static files, htmx's injected indicator style is off (base.html). A browser test
# visits every page and fails on any violation (tests/browser/test_csp.py).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'"],
        "connect-src": ["'self'"],  # the playground's streamed run (fetch)
        "font-src": ["'self'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
        "base-uri": ["'none'"],
        "object-src": ["'none'"],
    },
}
# Browser features the console never uses, switched off for every page (and any frame).
PERMISSIONS_POLICY = {
    feature: []
    for feature in (
        "accelerometer",
        "autoplay",
        "camera",
        "display-capture",
        "encrypted-media",
        "fullscreen",
        "geolocation",
        "gyroscope",
        "magnetometer",
        "microphone",
        "midi",
        "payment",
        "picture-in-picture",
        "publickey-credentials-get",
        "screen-wake-lock",
        "sync-xhr",
        "usb",
        "xr-spatial-tracking",
    )
}

# --- Logging ------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "redact_secrets": {"()": "platformadmin.redaction.RedactSecretsFilter"},
        "client_errors_without_traceback": {
            "()": "platformadmin.logfilters.ClientErrorsWithoutTraceback"
        },
    },
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["redact_secrets"],
        },
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # Django's own console and mail_admins handlers (DEFAULT_LOGGING) do not redact: its
        # records go to the root's redacting handler instead (ADMINS is not used here).
        "django": {"handlers": [], "level": "INFO"},
        # A refused page (403/404) is logged as one line, without a traceback.
        # Request errors are redacted where they are logged (by value too: the record
        # carries the request), so every handler, not only the console, gets them clean.
        "django.request": {"filters": ["client_errors_without_traceback", "redact_secrets"]},
    },
}

# --- Celery: visibility timeout against countdowns (needs the sections above) ----------
# Every countdown or ETA a task of ours is sent with is capped by one of these settings
# (tests/foundation/test_celery_config.py finds the senders). Each cap, and the default
# task run, must be shorter than CELERY_VISIBILITY_TIMEOUT (see "Celery"): otherwise Redis
# hands the waiting task to a second worker, which runs it a second time.
CELERY_COUNTDOWN_CAPS: dict[str, int] = {
    # Notification delivery retries (platformadmin/notifications/tasks.py).
    "NOTIFICATION_RETRY_MAX_SECONDS": NOTIFICATION_RETRY_MAX_SECONDS,
    # The coalesced budget evaluation (usage/budgets.py).
    "BUDGET_EVALUATION_DELAY_SECONDS": BUDGET_EVALUATION_DELAY_SECONDS,
}
_longest = {**CELERY_COUNTDOWN_CAPS, "CELERY_TASK_TIME_LIMIT": CELERY_TASK_TIME_LIMIT}
for _name, _seconds in _longest.items():
    if _seconds >= CELERY_VISIBILITY_TIMEOUT:
        raise ImproperlyConfigured(
            f"{_name} ({_seconds} s) must be shorter than CELERY_VISIBILITY_TIMEOUT "
            f"({CELERY_VISIBILITY_TIMEOUT} s): raise CELERY_VISIBILITY_TIMEOUT or lower {_name}, "
            "or Redis hands the waiting task to a second worker."
        )
