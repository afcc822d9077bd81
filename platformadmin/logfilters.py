"""Log filters for Django's request logger.

Django logs every 4xx raised as an exception (PermissionDenied, Http404, SuspiciousOperation)
with the exception's traceback. A refused page is an expected outcome, not a fault: one
walk through the console as a reader wrote dozens of tracebacks. Keep the one-line warning
(method, path, status), drop the traceback; 5xx keep theirs.
"""

from __future__ import annotations

import logging


class ClientErrorsWithoutTraceback(logging.Filter):
    """Strip ``exc_info`` from ``django.request`` records of responses below 500."""

    def filter(self, record: logging.LogRecord) -> bool:
        status = getattr(record, "status_code", None)
        if status is not None and status < 500:
            record.exc_info = None
            record.exc_text = None
        return True
