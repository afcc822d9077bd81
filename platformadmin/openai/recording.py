"""Recording a call: its usage record, its log line, and a count of usage writes that failed.

A failed write must not take the reply away from the user, nor vanish: it is logged as an
ERROR with both request ids and counted in the shared cache (``usage_write_failures``),
which the readiness checklist can show. Only the errors a write can raise are caught.
"""

from __future__ import annotations

import logging

from django.core.exceptions import ValidationError
from django.db import DatabaseError

from platformadmin import cachecounter
from platformadmin.openai.results import CallOutcome, usage_as_dict
from platformadmin.redaction import redact
from usage.services import usage_record_create

log = logging.getLogger("platformadmin.openai")

RATELIMIT_HEADERS = (
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-tokens",
)
FAILURES_PREFIX = "openai:usage-write-failures"
FAILURES_WINDOW = 3600  # counted per hour, read over the last 24
FAILURES_HOURS = 24


def _ratelimit_headers(headers) -> dict[str, str]:
    if not headers:
        return {}
    return {h: headers[h] for h in RATELIMIT_HEADERS if h in headers}


def record_call(
    outcome: CallOutcome, *, project, api_key, response=None, headers=None, source: str
) -> None:
    """Write the usage record for this outcome onto ``outcome.record``; a failed write is
    logged as an error with both request ids and counted, and the reply still goes out."""
    try:
        # usage_record_create is one transaction by itself (the record and its rollup).
        record, _ = usage_record_create(
            project=project,
            api_key=api_key,
            source=source,
            response=response,
            model=outcome.model,
            response_id=outcome.response_id,
            server_request_id=redact(outcome.server_request_id or ""),
            client_request_id=outcome.client_request_id,
            latency_ms=outcome.latency_ms,
            status=outcome.status if outcome.status != "refused" else "error",
            error_type=outcome.error_type,
            ratelimit_headers=_ratelimit_headers(headers),
            retries=outcome.retries,
            usage=(usage_as_dict(outcome.usage) if outcome.usage and response is None else None),
        )
    except (DatabaseError, ValidationError) as exc:
        cachecounter.incr(
            cachecounter.window(FAILURES_PREFIX, seconds=FAILURES_WINDOW).key,
            timeout=FAILURES_WINDOW * (FAILURES_HOURS + 1),
        )
        log.error(
            "usage record not written (%s: %s) for request id %s, client request id %s, model %s",
            type(exc).__name__,
            redact(str(exc)),
            redact(outcome.server_request_id or "none"),
            outcome.client_request_id,
            outcome.model,
        )
        return
    outcome.record = record


def usage_write_failures(*, hours: int = FAILURES_HOURS) -> int:
    """How many usage writes failed in the last ``hours`` hours (whole hours, this one included)."""
    now = cachecounter.window(FAILURES_PREFIX, seconds=FAILURES_WINDOW)
    index = int(now.key.rsplit(":", 1)[1])
    return cachecounter.total([f"{FAILURES_PREFIX}:{index - back}" for back in range(hours)])


def log_outcome(outcome: CallOutcome, api_key) -> None:
    """The one log line of a call (refused, failed, stopped or answered), never the secret."""
    log.info(
        "openai call key=%s model=%s status=%s error=%s request_id=%s client_request_id=%s "
        "retries=%s latency_ms=%s",
        api_key.hint,
        outcome.model,
        outcome.status,
        outcome.error_type or "-",
        redact(outcome.server_request_id or "-"),
        outcome.client_request_id,
        outcome.retries,
        outcome.latency_ms,
    )
