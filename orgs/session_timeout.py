"""Sessions end after a working day without activity, and a week after sign-in at most.

Django's sessions have only one clock (``SESSION_COOKIE_AGE``, from the last save). This
middleware keeps two more in the session: when it started and when it was last active.
Past ``SESSION_IDLE_TIMEOUT`` seconds without a request, or ``SESSION_ABSOLUTE_LIFETIME``
seconds after sign-in, the user is signed out with a message and sent to the sign-in
page. Activity is written at most once a minute, so most requests save no session.
Both clocks start at the first request after sign-in (a session signed in before this
middleware was deployed starts them then too); signing out flushes them.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone

STARTED_KEY = "_session_started_at"
ACTIVE_KEY = "_session_active_at"
WRITE_EVERY_SECONDS = 60


def _hours(seconds: int) -> str:
    hours = seconds / 3600
    if hours >= 24 and hours % 24 == 0:
        days = int(hours // 24)
        return f"{days} day{'s' if days != 1 else ''}"
    return f"{hours:g} hour{'s' if hours != 1 else ''}"


class SessionTimeoutMiddleware:
    """Sign out idle and too-old sessions. After AuthenticationMiddleware and
    MessageMiddleware (it needs ``request.user`` and leaves a message)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return self.get_response(request)
        now = int(timezone.now().timestamp())
        session = request.session
        started, active = session.get(STARTED_KEY), session.get(ACTIVE_KEY)
        if not isinstance(started, int) or not isinstance(active, int):
            # First request after sign-in (or a session from before this middleware).
            session[STARTED_KEY] = session[ACTIVE_KEY] = now
            return self.get_response(request)
        idle, lifetime = settings.SESSION_IDLE_TIMEOUT, settings.SESSION_ABSOLUTE_LIFETIME
        if now - active > idle:
            return self._sign_out(
                request,
                f"You were signed out after {_hours(idle)} without "
                "activity. Sign in again to continue.",
            )
        if now - started > lifetime:
            return self._sign_out(
                request, f"Sessions last at most {_hours(lifetime)}: sign in again to continue."
            )
        if now - active >= WRITE_EVERY_SECONDS:
            session[ACTIVE_KEY] = now
        return self.get_response(request)

    def _sign_out(self, request: HttpRequest, message: str) -> HttpResponse:
        logout(request)  # flushes the session: nothing of it survives
        messages.warning(request, message)
        target = f"{reverse('login')}?{urlencode({'next': request.get_full_path()})}"
        if request.headers.get("HX-Request") == "true":
            # An htmx fragment request: a redirect would swap the sign-in page into the
            # fragment; ask htmx to load it as a page instead.
            response = HttpResponse(status=204)
            response["HX-Redirect"] = target
            return response
        return HttpResponseRedirect(target)
