"""Keep secrets out of logs and error pages.

Defence in depth: services never log secrets, but a stray exception message or a
local variable on Django's debug page could still carry one. Anything shaped like
an OpenAI key (or a key-ring entry) is replaced by a redacted hint.
"""

from __future__ import annotations

import logging
import re
from pprint import pformat

from django.views.debug import SafeExceptionReporterFilter

# sk-..., sk-proj-..., sk-svcacct-..., sk-admin-...; key-ring entries "vN:<44 chars>".
SECRET_PATTERN = re.compile(
    r"(sk-(?:proj-|svcacct-|admin-|ant-)?)[A-Za-z0-9_\-]{12,}|\bv\d+:[A-Za-z0-9_\-]{43}=?"
)


def redact(text: str) -> str:
    """Replace anything that looks like a secret with a short marker."""
    return SECRET_PATTERN.sub(lambda m: (m.group(1) or "") + "…[redacted]", text)


class RedactSecretsFilter(logging.Filter):
    """Logging filter: formats the message once, then redacts it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed log call must not drop the record
            return True
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


class SecretRedactingReporterFilter(SafeExceptionReporterFilter):
    """Django's filter plus key-shaped values in any variable or setting."""

    hidden_settings = re.compile(
        "API|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE|DATABASE_URL|BROKER_URL|EMAIL", flags=re.I
    )

    def cleanse_special_types(self, request, value):
        value = super().cleanse_special_types(request, value)
        if isinstance(value, str):
            return redact(value)
        return value

    def get_post_parameters(self, request):
        params = super().get_post_parameters(request)
        if not params:
            return params
        cleansed = params.copy()
        for key in cleansed:
            cleansed.setlist(key, [redact(v) if isinstance(v, str) else v for v in cleansed.getlist(key)])
        return cleansed

    def get_traceback_frame_variables(self, request, tb_frame):
        return [
            (name, _Redacted(value))
            for name, value in super().get_traceback_frame_variables(request, tb_frame)
        ]


class _Redacted:
    """Renders as the value's pretty repr with key-shaped substrings redacted."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def __repr__(self) -> str:
        return redact(pformat(self.value))
