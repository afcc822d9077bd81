"""A short path through the middleware stack for the machine-to-machine API.

``POST /api/v1/usage`` authenticates only with a bearer token: it reads no cookie, no
session, no logged-in user, renders no page and sets no message. The console's stack
(sessions, CSRF, authentication, OTP, messages, axes, htmx, whitenoise...) is pure cost
for it, about half of a small batch's time. This middleware sits right after
``SecurityMiddleware`` (so HTTPS redirects and security headers still apply) and sends
requests for views marked with :func:`api_view` straight to the view.

Safety: bypassing the session and CSRF middleware cannot open the API to CSRF or session
misuse, because those views never look at ``request.user`` or a cookie: without a valid
``Authorization: Bearer`` token they answer 401 (see tests/usage/test_middleware.py).
Only views that opt in with ``api_view`` are short-circuited; everything else goes
through the whole stack.

Under ASGI, Django runs the (synchronous) middleware chain in a new thread per request,
and its database connections are per thread: every API request opened a new PostgreSQL
connection (a new backend process) and left the old one to the garbage collector. So
under ASGI the view runs on a small per-process pool of long-lived threads
(``USAGE_API_THREADS``, default 4), each keeping its connection; ``close_old_connections``
runs in that thread before and after the view, as Django does on ``request_started`` /
``request_finished`` (``CONN_MAX_AGE``, health checks, a connection an error left
unusable). Under WSGI the worker threads already live long: the view runs in place.
"""

from __future__ import annotations

import contextvars
import threading
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.db import close_old_connections, connections
from django.urls import Resolver404, resolve

API_PREFIX = "/api/"


def api_view(view):
    """Mark a bearer-token-only view for the short path (it must be ``csrf_exempt``)."""
    if not getattr(view, "csrf_exempt", False):
        raise TypeError("api_view views authenticate by token only and must be csrf_exempt")
    view.api_short_path = True
    return view


def _run(view, request, args, kwargs):
    close_old_connections()
    try:
        return view(request, *args, **kwargs)
    finally:
        close_old_connections()


_pool: ThreadPoolExecutor | None = None
_pool_workers = 0  # the pool's max_workers (the executor keeps it private)
_pool_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    global _pool, _pool_workers
    if _pool is None:
        with _pool_lock:
            if _pool is None:
                _pool_workers = int(getattr(settings, "USAGE_API_THREADS", 4))
                _pool = ThreadPoolExecutor(max_workers=_pool_workers, thread_name_prefix="api")
    return _pool


def pool_shutdown() -> None:
    """Close every pool thread's database connections and stop the pool (tests, shutdown)."""
    global _pool
    with _pool_lock:
        pool, _pool, n = _pool, None, _pool_workers
    if pool is None:
        return
    barrier = threading.Barrier(n, timeout=10)

    def close() -> None:
        connections.close_all()
        barrier.wait()  # one task per thread: each waits until all threads closed theirs

    for future in [pool.submit(close) for _ in range(n)]:
        future.result()
    pool.shutdown(wait=True)


class ApiShortPathMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        path = request.path_info
        if not path.startswith(API_PREFIX):
            return self.get_response(request)
        try:
            match = resolve(path)
        except Resolver404:
            return self.get_response(request)
        view = match.func
        if not getattr(view, "api_short_path", False):
            return self.get_response(request)
        request.resolver_match = match
        if isinstance(request, ASGIRequest):
            # A per-request thread: hand over to a long-lived one (see the module doc).
            ctx = contextvars.copy_context()
            return (
                _executor().submit(ctx.run, _run, view, request, match.args, match.kwargs).result()
            )
        return view(request, *match.args, **match.kwargs)
