"""Keep secrets out of logs, pages, audit rows and error pages, DEBUG or not.

Two layers, because neither is enough alone:

* **by value**: the credential a call actually sent (taken from the request the SDK
  built, so no caller has to carry the plaintext around) is removed from any upstream
  text before it is shown, logged or stored, whatever its shape, in the encodings an
  echo takes: plain, URL-encoded, JSON-escaped, HTML-escaped and base64;
* **by shape**: anything that looks like a key the console stores (OpenAI ``sk-…``
  keys, Azure keys, ingestion tokens, key-ring entries) or a credential in an
  ``Authorization`` / ``api-key`` header is replaced by a marker. This is what the log
  filter and the error pages rely on, since they do not know the value.

The exception reporter (filter and reporter below) is active whether DEBUG is on or
off: Django's own filter only cleanses when DEBUG is off, and leaves a dict's values
and the request's GET parameters alone.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import re
from collections.abc import Iterable, Mapping
from pprint import pformat
from typing import Any
from urllib.parse import quote, quote_plus

from django.core.exceptions import SuspiciousOperation
from django.http import RawPostDataException
from django.http.multipartparser import MultiPartParserError
from django.views.debug import ExceptionReporter, SafeExceptionReporterFilter

REDACTED = "…[redacted]"
# Below this length a value is not scrubbed by value: it would blank ordinary words.
MIN_SCRUB_LENGTH = 8

_NOT_BEFORE = r"(?<![A-Za-z0-9_\-])"  # a key starts at a word edge ("task-…" is no key)
_NOT_AFTER = r"(?![A-Za-z0-9_\-])"
# Each pattern keeps group 1 (a non-secret prefix: the key type, the token's lookup
# prefix, the header name) and replaces the rest.
SECRET_PATTERNS: tuple[re.Pattern[str], ...] = (
    # OpenAI keys: sk-…, sk-proj-…, sk-svcacct-…, sk-admin-… (and sk-ant-… of a neighbour).
    re.compile(_NOT_BEFORE + r"(sk-(?:proj-|svcacct-|admin-|ant-)?)[A-Za-z0-9_\-]{12,}"),
    # Key-ring entries "vN:<urlsafe base64 of 32 bytes>".
    re.compile(r"\b(v\d+:)[A-Za-z0-9_\-]{43}=?"),
    # Ingestion tokens: "ingest_<12 hex lookup prefix>_<secret>" (usage/services.py).
    re.compile(r"\b(ingest_[0-9a-f]{12}_)[A-Za-z0-9_\-]{16,}"),
    # Azure OpenAI keys: 32 hex characters, or the newer 84 letters and digits. Request
    # ids ("req_<32 hex>") and fingerprints (64 hex) do not match: "_" and hex neighbours.
    re.compile(r"()(?<![A-Za-z0-9_])(?:[0-9a-fA-F]{32}|[A-Za-z0-9]{84})(?![A-Za-z0-9_])"),
    # Any credential in a header written out: "Authorization: Bearer …", "api-key: …",
    # "Bearer …" on its own, JSON or query-string style.
    re.compile(r"""(\bauthorization["']?\s*[:=]\s*["']?(?:[A-Za-z]+\s+)?)[^\s"',;&]{8,}""", re.I),
    re.compile(r"""(\bapi[-_]key["']?\s*[:=]\s*["']?)[^\s"',;&]{8,}""", re.I),
    re.compile(r"(\bbearer\s+)[^\s\"',;&]{8,}", re.I),
    # The password in a URL's user info: redis://:pw@host, postgres://user:pw@host.
    re.compile(r"(://[^:/@\s]*:)[^@/\s]+(?=@)"),
)
# Variable, setting, header and parameter names whose values are hidden outright.
SENSITIVE_NAMES = re.compile(
    "API|AUTH|TOKEN|KEY|SECRET|PASS|SIGNATURE|CREDENTIAL|HTTP_COOKIE|DATABASE_URL|BROKER_URL|CACHE_URL|EMAIL",
    flags=re.I,
)


def redact(text: str) -> str:
    """Replace anything shaped like a secret with its prefix and a marker."""
    text = str(text)  # lazy strings (settings, translations) pass isinstance(str) too
    for pattern in SECRET_PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) or "") + REDACTED, text)
    return text


def secret_forms(secret: str) -> list[str]:
    """The ways an echo may spell ``secret``, longest first (so a longer form is
    replaced whole before a shorter one inside it)."""
    raw = secret.encode("utf-8")
    b64 = base64.b64encode(raw).decode("ascii")
    forms = {
        secret,
        quote(secret, safe=""),
        quote_plus(secret, safe=""),
        quote(secret),
        json.dumps(secret)[1:-1],
        html.escape(secret),
        html.escape(secret, quote=False),
        b64,
        b64.rstrip("="),
        base64.urlsafe_b64encode(raw).decode("ascii").rstrip("="),
    }
    return sorted((f for f in forms if len(f) >= MIN_SCRUB_LENGTH), key=len, reverse=True)


def scrub(text: str | None, secrets: Iterable[str | None] = ()) -> str:
    """``text`` without the given secret values (in any of their forms), then redacted
    by shape. The place to call it is where upstream text becomes the console's."""
    if not text:
        return ""
    text = str(text)
    for secret in secrets:
        if not secret or len(secret) < MIN_SCRUB_LENGTH:
            continue
        for form in secret_forms(secret):
            # Case-insensitive: an echo may write "%2f" for "%2F".
            text = re.sub(re.escape(form), REDACTED, text, flags=re.I)
    return redact(text)


def header_secrets(headers: Mapping[str, str] | None) -> tuple[str, ...]:
    """The credentials in a set of request headers: the ``Authorization`` value (and the
    bearer token alone) and Azure's ``api-key``."""
    if not headers:
        return ()
    found: list[str] = []
    auth = (headers.get("authorization") or "").strip()
    if auth:
        found.append(auth)
        scheme, _, value = auth.partition(" ")
        if value.strip() and scheme.lower() in ("bearer", "basic", "token"):
            found.append(value.strip())
    if api_key := (headers.get("api-key") or "").strip():
        found.append(api_key)
    return tuple(found)


def exception_secrets(exc: BaseException | None) -> tuple[str, ...]:
    """The credentials the failed SDK call sent (from ``exc.request``, the request the
    SDK built, or the response's request), so its message can be scrubbed by value."""
    request = getattr(exc, "request", None)
    if request is None:
        request = getattr(getattr(exc, "response", None), "request", None)
    return header_secrets(getattr(request, "headers", None))


def request_secrets(request) -> list[str]:
    """The secrets a Django request carries: its credentials (``Authorization``,
    ``api-key``) and the POST values hidden by name or by ``sensitive_post_parameters``.
    An error page or a log line about this request is scrubbed of them by value."""
    if request is None:
        return []
    found = list(header_secrets(getattr(request, "headers", None)))
    try:
        post = getattr(request, "POST", None) or {}
    except (SuspiciousOperation, MultiPartParserError, RawPostDataException, OSError):
        # A body that cannot be parsed has no POST values to scrub; the error being
        # reported or logged must still get through (its headers are scrubbed above).
        post = {}
    sensitive = getattr(request, "sensitive_post_parameters", None) or []
    for key in getattr(post, "keys", list)():
        if sensitive == "__ALL__" or key in sensitive or SENSITIVE_NAMES.search(key):
            found.extend(v for v in post.getlist(key) if isinstance(v, str))
    return found


class RedactSecretsFilter(logging.Filter):
    """Logging filter: formats the message once, then redacts it by shape, and by value
    for the request a record carries (``django.request`` attaches it to its errors).

    The traceback of ``log.exception`` is redacted too (it is formatted here and cached
    on the record, where the formatter takes it from)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError, KeyError):  # a malformed log call must not drop the record
            return True
        secrets = request_secrets(getattr(record, "request", None))
        redacted = scrub(message, secrets)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text, secrets)
        return True


def _cleanse(name: str, value: Any, substitute: str) -> Any:
    """A value with sensitive-named entries hidden and strings redacted by shape,
    recursing into dicts, lists and tuples (a dict of settings, a kwargs dict)."""
    if (
        isinstance(name, str)
        and name
        and SENSITIVE_NAMES.search(name)
        and isinstance(value, (str, bytes))
    ):
        return substitute
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {
            k: _cleanse(k if isinstance(k, str) else "", v, substitute) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_cleanse("", v, substitute) for v in value]
    if isinstance(value, tuple):
        return tuple(_cleanse("", v, substitute) for v in value)
    return value


class SecretRedactingReporterFilter(SafeExceptionReporterFilter):
    """Django's filter, always active, plus: sensitive names in dicts and locals, and
    key-shaped values anywhere (variables, settings, META, POST)."""

    hidden_settings = SENSITIVE_NAMES

    def is_active(self, request) -> bool:
        """Active with DEBUG on too: a debug page left on in a shared environment is
        exactly where a pasted key would be read (Django switches it off for DEBUG)."""
        return True

    def cleanse_setting(self, key, value):
        value = super().cleanse_setting(key, value)
        return (
            _cleanse("", value, self.cleansed_substitute)
            if isinstance(value, (str, dict, list, tuple))
            else value
        )

    def get_post_parameters(self, request):
        params = super().get_post_parameters(request)
        if not params:
            return params
        cleansed = params.copy()
        for key in cleansed:
            values = [
                v if v == self.cleansed_substitute else _cleanse(key, v, self.cleansed_substitute)
                for v in cleansed.getlist(key)
            ]
            cleansed.setlist(key, values)
        return cleansed

    def get_traceback_frame_variables(self, request, tb_frame):
        return [
            (name, _Redacted(_cleanse(name, value, self.cleansed_substitute)))
            for name, value in super().get_traceback_frame_variables(request, tb_frame)
        ]


class SecretRedactingExceptionReporter(ExceptionReporter):
    """Django's reporter, with a last pass by value over everything it renders.

    The values are the request's own credentials (``Authorization``, ``api-key``) and
    the POST parameters hidden by name: a pasted key that also sits in an exception
    message or an unnamed local is removed wherever it appears.
    """

    def get_traceback_data(self):
        data = super().get_traceback_data()
        secrets = request_secrets(self.request)
        substitute = self.filter.cleansed_substitute

        def clean(value: Any) -> Any:
            if isinstance(value, str):
                return scrub(value, secrets)
            if isinstance(value, dict):
                return {k: clean(v) for k, v in value.items()}
            if isinstance(value, (list, tuple)):
                return type(value)(clean(v) for v in value)
            return value

        for frame in data.get("frames", []):
            for name in ("vars", "pre_context", "context_line", "post_context"):
                if name in frame:
                    frame[name] = clean(frame[name])
            if frame.get("exc_cause") is not None:
                frame["exc_cause"] = scrub(str(frame["exc_cause"]), secrets)
        for name in (
            "request_meta",
            "settings",
            "exception_notes",
            "unicode_hint",
            "request_insecure_uri",
        ):
            if name in data:
                data[name] = clean(data[name])
        if "exception_value" in data:
            data["exception_value"] = scrub(str(data["exception_value"]), secrets)
        for name in ("request_COOKIES_items", "filtered_POST_items", "request_GET_items"):
            if name in data:
                data[name] = [
                    (k, v if v == substitute else clean(_cleanse(k, v, substitute)))
                    for k, v in list(data[name])
                ]
        if "lastframe" in data and data.get("frames"):
            data["lastframe"] = data["frames"][-1]
        return data


class _Redacted:
    """Renders as the value's pretty repr with key-shaped substrings redacted."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def __repr__(self) -> str:
        return redact(pformat(self.value))
