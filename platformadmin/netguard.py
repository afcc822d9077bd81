"""Where requests the server makes on a user's behalf may go: public addresses only.

A key's base URL or Azure endpoint (and later a webhook URL) is typed by a user, and the
server fetches it with a secret attached. Without a guard, ``http://169.254.169.254/…``
or ``http://localhost:6379`` turns the console into a proxy to its own network. So:

- every connection is checked on the address it actually goes to: the host is resolved
  once, every resolved address is checked, and the socket connects to a checked address
  (no second lookup, so no DNS-rebinding window between check and connect);
- refused: loopback, private, shared (CGNAT), link-local, multicast, unspecified,
  reserved and documentation ranges, cloud metadata addresses, IPv4 embedded in IPv6
  (mapped, 6to4, NAT64) when the IPv4 part is refused;
- no redirects are followed and no proxy from the environment is used (a proxy would make
  the request for us, unchecked);
- unless the origin (scheme, host, port, exactly) is in ``OUTBOUND_ALLOWED_ORIGINS``: the
  bundled simulator of the demo and tests, or a self-hosted model server on the LAN.

Use ``validate_outbound_url`` on URL form fields (a clear error while typing) and
``guarded_client()`` / ``guarded_async_client()`` (or the transports) for the requests;
the check at connect time is the one that counts.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import anyio
import httpcore2
import httpx2
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, ValidationError

SETTING = "OUTBOUND_ALLOWED_ORIGINS"
DEFAULT_PORTS = {"http": 80, "https": 443}
DEFAULT_LIMITS = httpx2.Limits(max_connections=1000, max_keepalive_connections=100)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]

# Checked first, so the message says what the address really is.
_METADATA = {
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, Oracle instance metadata
        "169.254.170.2",  # AWS ECS task metadata
        "fd00:ec2::254",  # AWS instance metadata over IPv6
        "100.100.100.200",  # Alibaba Cloud metadata
        "168.63.129.16",  # Azure host (wireserver); a public-looking address
    )
}

# IANA special-purpose registries, by what the message calls them. Written out rather
# than left to ``ipaddress.is_private``, whose ranges changed between Python releases.
_RANGES: list[tuple[str, list[str]]] = [
    ("unspecified", ["0.0.0.0/8", "::/128"]),
    ("loopback", ["127.0.0.0/8", "::1/128"]),
    (
        "private",
        [
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "fc00::/7",
            "fec0::/10",
            "64:ff9b:1::/48",
        ],
    ),
    ("shared (carrier-grade NAT)", ["100.64.0.0/10"]),
    ("link-local", ["169.254.0.0/16", "fe80::/10"]),
    ("multicast", ["224.0.0.0/4", "ff00::/8"]),
    (
        "reserved",
        [
            "192.0.0.0/24",
            "192.0.2.0/24",
            "192.88.99.0/24",
            "198.18.0.0/15",
            "198.51.100.0/24",
            "203.0.113.0/24",
            "240.0.0.0/4",
            "::/8",
            "100::/64",
            "2001::/23",
            "2001:db8::/32",
            "3fff::/20",
        ],
    ),
]
_NETWORKS = [(name, ipaddress.ip_network(net)) for name, nets in _RANGES for net in nets]
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class OutboundRefused(httpx2.ConnectError):
    """A request the guard would not connect: nothing was sent."""


@dataclass(frozen=True)
class Origin:
    """scheme://host:port with the default port filled in, as the allow-list compares it."""

    scheme: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    @classmethod
    def from_url(cls, url: str | httpx2.URL) -> Origin:
        """Parse ``url`` as httpx2 does when it sends (IDNA, lower case, IPv6 unbracketed)."""
        parsed = url if isinstance(url, httpx2.URL) else httpx2.URL(url)
        scheme = parsed.scheme.lower()
        if scheme not in DEFAULT_PORTS:
            raise ValueError(f"the scheme must be http or https, not {scheme or 'none'!r}")
        host = parsed.raw_host.decode("ascii").lower()
        if not host:
            raise ValueError("the URL has no host")
        return cls(scheme, host, parsed.port or DEFAULT_PORTS[scheme])

    @classmethod
    def from_httpcore(cls, origin: httpcore2.Origin) -> Origin:
        scheme = origin.scheme.decode("ascii").lower()
        return cls(
            scheme, origin.host.decode("ascii").lower(), origin.port or DEFAULT_PORTS.get(scheme, 0)
        )


_allowed_memo: tuple[tuple[str, ...], frozenset[Origin]] | None = None
_allowed_lock = threading.Lock()


def allowed_origins() -> frozenset[Origin]:
    """The allow-list, read from settings on every call (tests override it), parsed once
    per value."""
    global _allowed_memo
    raw = tuple(getattr(settings, SETTING, ()) or ())
    memo = _allowed_memo
    if memo is not None and memo[0] == raw:
        return memo[1]
    origins = set()
    for entry in raw:
        entry = entry.strip()
        if not entry:
            continue
        try:
            url = httpx2.URL(entry)
            origin = Origin.from_url(url)
        except (ValueError, httpx2.InvalidURL) as exc:
            raise ImproperlyConfigured(
                f"{SETTING}: {entry!r} is not an origin ({exc}); write it as "
                "scheme://host[:port], e.g. http://127.0.0.1:8765"
            ) from exc
        if url.userinfo or url.raw_path not in (b"", b"/") or url.fragment:
            raise ImproperlyConfigured(
                f"{SETTING}: {entry!r} is not an origin; remove the user, path and "
                "query, leaving scheme://host[:port], e.g. http://127.0.0.1:8765"
            )
        origins.add(origin)
    result = frozenset(origins)
    with _allowed_lock:
        _allowed_memo = (raw, result)
    return result


def is_allowed(origin: Origin) -> bool:
    return origin in allowed_origins()


def address_problem(address: str | IPAddress) -> str | None:
    """What kind of non-public address this is ("loopback", "cloud metadata", …), or None."""
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id:
        ip = ipaddress.IPv6Address(str(ip).split("%", 1)[0])
    if ip in _METADATA:
        return "cloud metadata"
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = (
            ip.ipv4_mapped
            or ip.sixtofour
            or (ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF) if ip in _NAT64 else None)
        )
        if embedded is not None:
            inner = address_problem(embedded)
            if inner is not None:
                return f"{inner}, as IPv4 inside IPv6"
            if ip.ipv4_mapped is not None:
                return None  # ::ffff:<public IPv4> is that public address
    for name, network in _NETWORKS:
        if ip.version == network.version and ip in network:
            return name
    if not ip.is_global:
        return "reserved"
    return None


def _system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [info[4][0] for info in infos]


def _dedupe(addresses: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(addresses))


def refusal_message(origin: Origin, problem: str) -> str:
    return (
        f"{origin.host} resolves to a private address; outgoing requests go only to public addresses "
        f"unless its origin is in {SETTING} (this one is {problem}; add {origin} to that setting only "
        "if the server is yours)."
    )


def check_addresses(origin: Origin, addresses: Iterable[str]) -> list[str]:
    """The addresses, if every one is public; else ``OutboundRefused`` naming the kind.

    All must pass: a name resolving to a public and a private address is refused, since
    which one a later connect picks is not ours to choose.
    """
    addresses = _dedupe(addresses)
    if not addresses:
        raise httpcore2.ConnectError(f"{origin.host} resolved to no address.")
    for address in addresses:
        problem = address_problem(address)
        if problem is not None:
            raise OutboundRefused(refusal_message(origin, problem))
    return addresses


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


# --- Form fields -------------------------------------------------------------------------


def validate_outbound_url(
    value: str, *, label: str = "This URL", resolver: Resolver | None = None
) -> None:
    """A form validator: refuse a URL the server would not connect to, saying why.

    A host that does not resolve now is accepted (it may later); the connect-time check
    decides then.
    """
    if not value:
        return
    try:
        url = httpx2.URL(value)
        origin = Origin.from_url(url)
    except (ValueError, httpx2.InvalidURL) as exc:
        raise ValidationError(
            f"{label} is not a usable URL ({exc}); write it as https://host/path.", code="invalid"
        ) from exc
    if url.userinfo:
        raise ValidationError(
            f"{label} must not contain a user or password before '@' (the key is sent as a "
            "header); remove the part up to and including '@'.",
            code="userinfo",
        )
    if is_allowed(origin):
        return
    literal = _literal(origin.host)
    if literal is not None:
        addresses = [str(literal)]
    else:
        try:
            addresses = (resolver or _system_resolver)(origin.host, origin.port)
        except (OSError, UnicodeError):
            return
    try:
        check_addresses(origin, addresses)
    except OutboundRefused as exc:
        raise ValidationError(f"{label} {value}: {exc}", code="private_address") from exc
    except httpcore2.ConnectError:
        return


# --- Connect time: network backends that resolve, check and connect to the checked address


def _connect_candidates(origin: Origin, host: str, port: int, resolver: Resolver) -> list[str]:
    if is_allowed(origin):
        return [host]  # allow-listed: connect as usual (its DNS is trusted by whoever listed it)
    literal = _literal(host)
    if literal is not None:
        return check_addresses(origin, [str(literal)])
    try:
        addresses = resolver(host, port)
    except (OSError, UnicodeError) as exc:
        raise httpcore2.ConnectError(f"{host} could not be resolved: {exc}") from exc
    return check_addresses(origin, addresses)


class GuardedBackend(httpcore2.NetworkBackend):
    """One connection's backend: knows its origin (for the allow-list), resolves once,
    checks, and hands the inner backend a numeric address (TLS still verifies the name:
    httpcore sends SNI and checks the certificate against the origin's host)."""

    def __init__(
        self,
        origin: Origin,
        inner: httpcore2.NetworkBackend | None = None,
        resolver: Resolver | None = None,
    ) -> None:
        self.origin = origin
        self.inner = inner if inner is not None else httpcore2.SyncBackend()
        self.resolver = resolver or _system_resolver

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ):
        last: Exception | None = None
        for address in _connect_candidates(self.origin, host, port, self.resolver):
            try:
                return self.inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore2.ConnectError, httpcore2.ConnectTimeout) as exc:
                last = exc  # try the next checked address, as create_connection would
        assert last is not None
        raise last

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ):
        raise OutboundRefused("Unix sockets are not an outgoing destination.")

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)


async def _async_resolver(host: str, port: int) -> list[str]:
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


class AsyncGuardedBackend(httpcore2.AsyncNetworkBackend):
    """``GuardedBackend`` for the async pool (the lookup runs off the event loop)."""

    def __init__(self, origin: Origin, inner: httpcore2.AsyncNetworkBackend | None = None) -> None:
        self.origin = origin
        self.inner = inner if inner is not None else httpcore2.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ):
        if is_allowed(self.origin) or _literal(host) is not None:
            candidates = _connect_candidates(self.origin, host, port, _system_resolver)
        else:
            try:
                resolved = await _async_resolver(host, port)
            except (OSError, UnicodeError) as exc:
                raise httpcore2.ConnectError(f"{host} could not be resolved: {exc}") from exc
            candidates = check_addresses(self.origin, resolved)
        last: Exception | None = None
        for address in candidates:
            try:
                return await self.inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore2.ConnectError, httpcore2.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ):
        raise OutboundRefused("Unix sockets are not an outgoing destination.")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


def _connection_kwargs(pool) -> dict:
    return {
        "ssl_context": pool._ssl_context,
        "keepalive_expiry": pool._keepalive_expiry,
        "http1": pool._http1,
        "http2": pool._http2,
        "retries": pool._retries,
        "local_address": pool._local_address,
        "socket_options": pool._socket_options,
    }


class GuardedConnectionPool(httpcore2.ConnectionPool):
    """httpcore's pool, each new connection on a ``GuardedBackend`` for its origin."""

    def __init__(self, *args, resolver: Resolver | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._resolver = resolver

    def create_connection(self, origin: httpcore2.Origin):
        backend = GuardedBackend(
            Origin.from_httpcore(origin), self._network_backend, self._resolver
        )
        return httpcore2.HTTPConnection(
            origin=origin, network_backend=backend, **_connection_kwargs(self)
        )


class AsyncGuardedConnectionPool(httpcore2.AsyncConnectionPool):
    def create_connection(self, origin: httpcore2.Origin):
        backend = AsyncGuardedBackend(Origin.from_httpcore(origin), self._network_backend)
        return httpcore2.AsyncHTTPConnection(
            origin=origin, network_backend=backend, **_connection_kwargs(self)
        )


def _pool_kwargs(
    verify, cert, trust_env: bool, http1: bool, http2: bool, limits: httpx2.Limits, retries: int
) -> dict:
    return {
        "ssl_context": httpx2.create_ssl_context(verify=verify, cert=cert, trust_env=trust_env),
        "max_connections": limits.max_connections,
        "max_keepalive_connections": limits.max_keepalive_connections,
        "keepalive_expiry": limits.keepalive_expiry,
        "http1": http1,
        "http2": http2,
        "retries": retries,
    }


class GuardedTransport(httpx2.HTTPTransport):
    """httpx2's transport on a guarded pool; never through a proxy."""

    def __init__(
        self,
        *,
        verify: Any = True,
        cert: Any = None,
        trust_env: bool = True,
        http1: bool = True,
        http2: bool = False,
        limits: httpx2.Limits = DEFAULT_LIMITS,
        retries: int = 0,
        network_backend: httpcore2.NetworkBackend | None = None,
        resolver: Resolver | None = None,
    ) -> None:
        # Not super().__init__: it would build an unguarded pool (and honour a proxy).
        self._pool = GuardedConnectionPool(
            **_pool_kwargs(verify, cert, trust_env, http1, http2, limits, retries),
            network_backend=network_backend,
            resolver=resolver,
        )


class AsyncGuardedTransport(httpx2.AsyncHTTPTransport):
    def __init__(
        self,
        *,
        verify: Any = True,
        cert: Any = None,
        trust_env: bool = True,
        http1: bool = True,
        http2: bool = False,
        limits: httpx2.Limits = DEFAULT_LIMITS,
        retries: int = 0,
        network_backend: httpcore2.AsyncNetworkBackend | None = None,
    ) -> None:
        self._pool = AsyncGuardedConnectionPool(
            **_pool_kwargs(verify, cert, trust_env, http1, http2, limits, retries),
            network_backend=network_backend,
        )


class GuardedClient(httpx2.Client):
    """An httpx2 client that never follows a redirect, whatever a caller asks per request
    (a redirect could point anywhere; the connect-time check would catch a private target,
    but a public one would receive the secret headers' request anew)."""

    def send(self, request: httpx2.Request, **kwargs) -> httpx2.Response:
        kwargs["follow_redirects"] = False
        return super().send(request, **kwargs)


class AsyncGuardedClient(httpx2.AsyncClient):
    async def send(self, request: httpx2.Request, **kwargs) -> httpx2.Response:
        kwargs["follow_redirects"] = False
        return await super().send(request, **kwargs)


def guarded_client(*, transport: httpx2.BaseTransport | None = None, **kwargs) -> GuardedClient:
    """An httpx2.Client through the guard: no redirects, no environment proxy."""
    kwargs.setdefault("limits", DEFAULT_LIMITS)
    transport = transport or GuardedTransport(limits=kwargs["limits"])
    return GuardedClient(transport=transport, follow_redirects=False, trust_env=False, **kwargs)


def guarded_async_client(
    *, transport: httpx2.AsyncBaseTransport | None = None, **kwargs
) -> AsyncGuardedClient:
    kwargs.setdefault("limits", DEFAULT_LIMITS)
    transport = transport or AsyncGuardedTransport(limits=kwargs["limits"])
    return AsyncGuardedClient(
        transport=transport, follow_redirects=False, trust_env=False, **kwargs
    )
