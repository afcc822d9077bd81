"""Sign-in locks with one limit per kind of lock, and the client address behind a proxy.

django-axes counts failures for every entry of ``AXES_LOCKOUT_PARAMETERS`` but compares
the largest count with a single ``AXES_FAILURE_LIMIT``. One limit cannot serve three
locks: per (account, address) it should be small (someone mistyping), per account across
addresses larger (a botnet guessing one password), per address across accounts larger
still (a shared office address). ``LockoutHandler`` keeps axes' database handler and its
bookkeeping and only changes how the counts are compared: each lock against its own
limit, reported to axes in the unit of ``AXES_FAILURE_LIMIT`` so axes' own comparison
(``failures >= AXES_FAILURE_LIMIT``) still decides.

``TrustedProxyMiddleware`` sets ``REMOTE_ADDR`` from ``X-Forwarded-For`` only when the
request comes from an address in ``TRUSTED_PROXY_IPS``; from anywhere else the header
is ignored, so a client cannot pick the address it is counted under.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
from collections.abc import Callable, Sequence

from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_username, get_lockout_parameters
from axes.models import AccessAttempt
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db.models import Sum
from django.http import HttpRequest, HttpResponse

log = logging.getLogger(__name__)

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def failure_limit_for(parameter: str | Sequence[str]) -> int:
    """The limit of one entry of ``AXES_LOCKOUT_PARAMETERS``."""
    key = (parameter,) if isinstance(parameter, str) else tuple(parameter)
    limits = {
        ("username", "ip_address"): settings.AXES_FAILURE_LIMIT,
        ("username",): settings.SIGNIN_ACCOUNT_FAILURE_LIMIT,
        ("ip_address",): settings.SIGNIN_ADDRESS_FAILURE_LIMIT,
    }
    if key not in limits:
        raise ImproperlyConfigured(
            f"AXES_LOCKOUT_PARAMETERS entry {list(key)!r} has no limit: use "
            "['username', 'ip_address'], 'username' or 'ip_address'."
        )
    return limits[key]


class LockoutHandler(AxesDatabaseHandler):
    """axes' database handler with a limit per lock and a narrower reset on success."""

    def get_failures(self, request, credentials: dict | None = None) -> int:
        """``AXES_FAILURE_LIMIT`` minus the fewest tries any lock has left.

        So the value reaches ``AXES_FAILURE_LIMIT`` exactly when one lock reaches its own
        limit; for the (account, address) lock it is the plain failure count.
        """
        base = settings.AXES_FAILURE_LIMIT
        parameters = get_lockout_parameters(request, credentials)
        attempts_list = self.get_user_attempts(request, credentials)
        worst = 0
        for parameter, attempts in zip(parameters, attempts_list, strict=True):
            failures = attempts.aggregate(total=Sum("failures_since_start"))["total"] or 0
            left = failure_limit_for(parameter) - failures
            worst = max(worst, base - left)
        return worst

    def reset_user_attempts(self, request: HttpRequest, credentials: dict | None = None) -> int:
        """On a successful sign-in, forget only that account's failures from that address.

        axes' own reset deletes every row matching any lock, i.e. all failures from the
        address too: an attacker with one valid account of their own could sign into it
        to wipe the per-address count and go on guessing other accounts' passwords.
        """
        username = get_client_username(request, credentials)
        count, _ = AccessAttempt.objects.filter(
            username=username, ip_address=request.axes_ip_address
        ).delete()
        return count


def parse_networks(values: Sequence[str], *, setting: str) -> tuple[IpNetwork, ...]:
    """Addresses or CIDR ranges from a setting; a bad entry is a startup error naming it."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError as exc:
            raise ImproperlyConfigured(
                f"{setting}: {value!r} is not an IP address or CIDR range "
                "(e.g. 10.0.0.5 or 10.0.0.0/24)."
            ) from exc
    return tuple(networks)


def _address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        return None


@functools.lru_cache(maxsize=4)
def _trusted_networks(values: tuple[str, ...]) -> tuple[IpNetwork, ...]:
    return parse_networks(values, setting="TRUSTED_PROXY_IPS")


def _in(value: str, networks: Sequence[IpNetwork]) -> bool:
    address = _address(value)
    return address is not None and any(address in network for network in networks)


def forwarded_client(remote_addr: str, forwarded_for: str, trusted: Sequence[IpNetwork]) -> str:
    """The client address: walk ``X-Forwarded-For`` from the right past trusted proxies.

    Each proxy appends the address it received the request from, so the right-most entry
    not in ``trusted`` is the first one no trusted proxy vouches for: the client.
    Entries left of it may be anything the client typed.
    """
    if not _in(remote_addr, trusted):
        return remote_addr
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _in(hop, trusted):
            return hop if _address(hop) is not None else remote_addr
    return hops[0] if hops else remote_addr


class TrustedProxyMiddleware:
    """``REMOTE_ADDR`` becomes the client's address when a trusted proxy forwarded it.

    Must be first in MIDDLEWARE: axes, the audit log and the password-reset throttle
    all read ``REMOTE_ADDR`` afterwards. uvicorn's ``--forwarded-allow-ips`` does the
    same in the server; either one is enough.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response
        _trusted_networks(tuple(settings.TRUSTED_PROXY_IPS))  # a bad entry fails at startup

    def __call__(self, request: HttpRequest) -> HttpResponse:
        trusted = _trusted_networks(tuple(settings.TRUSTED_PROXY_IPS))
        if trusted:
            remote = request.META.get("REMOTE_ADDR", "")
            forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
            client = forwarded_client(remote, forwarded, trusted)
            if not forwarded and _in(remote, trusted):
                # The proxy did not say who the client is: every request would count
                # under the proxy's address and one attacker could lock everyone out.
                log.warning(
                    "Request from trusted proxy %s without X-Forwarded-For: configure the "
                    "proxy to send it (sign-in locks count per client address).",
                    remote,
                )
            request.META["REMOTE_ADDR"] = client
        return self.get_response(request)
