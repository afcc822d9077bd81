"""The one place that builds OpenAI SDK clients.

One long-lived ``httpx2.Client`` per process carries every call's connections, through
the outgoing-request guard (platformadmin/netguard.py: public addresses only unless
allow-listed, checked at connect time, no redirects). One
``OpenAI`` base client (and one ``AzureOpenAI`` per endpoint + API version) is built on
it once. A call gets a per-key copy via ``with_options``, which reuses the parent's
connection pool, with the secret decrypted right before the call and the project's
timeouts and retries. Nothing here logs or stores the plaintext. The sync client serves
views under WSGI, Celery tasks and commands; under ASGI the playground's stream runs on
``AsyncOpenAI``: one per running event loop (a uvicorn worker has one) on that loop's one
async pool through the same guard, dropped with the loop.

Services in platformadmin/openai/services.py call this; nothing else imports the SDK.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
import weakref
from dataclasses import dataclass

import httpx2
import openai
from django.views.decorators.debug import sensitive_variables

from platformadmin import netguard

OPENAI_BASE_URL = "https://api.openai.com/v1"
DEFAULT_TIMEOUT_SECONDS = 60.0
DEFAULT_CONNECT_TIMEOUT_SECONDS = 5.0
DEFAULT_MAX_RETRIES = 3
_PLACEHOLDER_KEY = "unset"  # the base clients never send a request themselves


def _refused(exc: netguard.OutboundRefused, request: httpx2.Request) -> openai.APIConnectionError:
    """The guard refused the key's destination; nothing was sent. Raised as an
    ``OpenAIError`` so the SDK passes it up at once (no retries) with the guard's message;
    ``__cause__`` is the ``OutboundRefused``."""
    return openai.APIConnectionError(message=str(exc), request=request)


def refusal_of(exc: BaseException) -> netguard.OutboundRefused | None:
    """The guard's refusal behind an SDK connection error, if that is what it was."""
    cause = exc.__cause__
    return cause if isinstance(cause, netguard.OutboundRefused) else None


class _GuardedSDKTransport(netguard.GuardedTransport):
    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        try:
            return super().handle_request(request)
        except netguard.OutboundRefused as exc:
            raise _refused(exc, request) from exc


class _AsyncGuardedSDKTransport(netguard.AsyncGuardedTransport):
    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        try:
            return await super().handle_async_request(request)
        except netguard.OutboundRefused as exc:
            raise _refused(exc, request) from exc


def _timeout() -> httpx2.Timeout:
    return httpx2.Timeout(DEFAULT_TIMEOUT_SECONDS, connect=DEFAULT_CONNECT_TIMEOUT_SECONDS)


def new_guarded_http_client() -> httpx2.Client:
    """A pool like the SDK's default (1000 connections, 100 kept alive), through the guard."""
    return netguard.guarded_client(
        transport=_GuardedSDKTransport(limits=netguard.DEFAULT_LIMITS), timeout=_timeout()
    )


def new_guarded_async_http_client() -> httpx2.AsyncClient:
    """The async pool, same limits and guard (no redirects, no environment proxy)."""
    return netguard.guarded_async_client(
        transport=_AsyncGuardedSDKTransport(limits=netguard.DEFAULT_LIMITS), timeout=_timeout()
    )


_lock = threading.RLock()
_http_client: httpx2.Client | None = None
_base_client: openai.OpenAI | None = None
_azure_clients: dict[tuple[str, str], openai.AzureOpenAI] = {}
# Async clients hold connections bound to an event loop: one set per loop, dropped with it.
_async_clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def shared_http_client() -> httpx2.Client:
    """The process's connection pool (SDK defaults: 1000 connections, 100 kept alive), guarded."""
    global _http_client
    if _http_client is None:
        with _lock:
            if _http_client is None:
                _http_client = new_guarded_http_client()
    return _http_client


def base_client() -> openai.OpenAI:
    """The process-wide OpenAI client every OpenAI / compatible call derives from."""
    global _base_client
    if _base_client is None:
        with _lock:
            if _base_client is None:
                _base_client = openai.OpenAI(
                    api_key=_PLACEHOLDER_KEY,
                    base_url=OPENAI_BASE_URL,
                    http_client=shared_http_client(),
                    max_retries=DEFAULT_MAX_RETRIES,
                    timeout=httpx2.Timeout(
                        DEFAULT_TIMEOUT_SECONDS, connect=DEFAULT_CONNECT_TIMEOUT_SECONDS
                    ),
                )
    return _base_client


def azure_base_client(endpoint: str, api_version: str) -> openai.AzureOpenAI:
    """One AzureOpenAI per (endpoint, API version), on the same connection pool."""
    key = (endpoint.rstrip("/"), api_version)
    client = _azure_clients.get(key)
    if client is None:
        with _lock:
            client = _azure_clients.get(key)
            if client is None:
                client = openai.AzureOpenAI(
                    api_key=_PLACEHOLDER_KEY,
                    azure_endpoint=key[0],
                    api_version=api_version,
                    http_client=shared_http_client(),
                    max_retries=DEFAULT_MAX_RETRIES,
                    timeout=httpx2.Timeout(
                        DEFAULT_TIMEOUT_SECONDS, connect=DEFAULT_CONNECT_TIMEOUT_SECONDS
                    ),
                )
                _azure_clients[key] = client
    return client


def async_base_client(loop: asyncio.AbstractEventLoop, *, azure: tuple[str, str] | None = None):
    """The AsyncOpenAI (AsyncAzureOpenAI for ``azure=(endpoint, api_version)``) of ``loop``,
    on that loop's one async pool. The loop is passed, not looked up, so the per-key copy
    can be made in a worker thread (sync_to_async) for the loop that will use it."""
    with _lock:
        per_loop = _async_clients.setdefault(loop, {})
        if "http" not in per_loop:
            per_loop["http"] = new_guarded_async_http_client()
        key = ("azure", azure[0].rstrip("/"), azure[1]) if azure else ("openai",)
        client = per_loop.get(key)
        if client is None:
            common = {
                "api_key": _PLACEHOLDER_KEY,
                "http_client": per_loop["http"],
                "max_retries": DEFAULT_MAX_RETRIES,
                "timeout": _timeout(),
            }
            if azure:
                client = openai.AsyncAzureOpenAI(
                    azure_endpoint=key[1], api_version=key[2], **common
                )
            else:
                client = openai.AsyncOpenAI(base_url=OPENAI_BASE_URL, **common)
            per_loop[key] = client
    return client


def close_clients() -> None:
    """Drop the process's clients and pool (tests and benchmarks that need a fresh pool)."""
    global _http_client, _base_client
    with _lock:
        if _http_client is not None:
            _http_client.close()
        _http_client, _base_client = None, None
        _azure_clients.clear()
        _async_clients.clear()  # their loops close their connections


def effective_base_url(api_key) -> str:
    """Where the key's calls go: the breaker is kept per (this URL, key)."""
    if api_key.provider == "azure":
        return (
            f"{api_key.azure_endpoint.rstrip('/')}/openai?api-version={api_key.azure_api_version}"
        )
    return (api_key.base_url or OPENAI_BASE_URL).rstrip("/")


@dataclass(frozen=True)
class CallSettings:
    """The project's client settings (the SDK guide's production defaults otherwise)."""

    timeout: float = DEFAULT_TIMEOUT_SECONDS
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_SECONDS
    max_retries: int = DEFAULT_MAX_RETRIES

    @classmethod
    def for_project(cls, project) -> CallSettings:
        if project is None:
            return cls()
        return cls(
            float(project.request_timeout_seconds),
            float(project.connect_timeout_seconds),
            int(project.max_retries),
        )

    @property
    def httpx_timeout(self) -> httpx2.Timeout:
        return httpx2.Timeout(self.timeout, connect=min(self.connect_timeout, self.timeout))


def new_client_request_id() -> str:
    """A fresh X-Client-Request-Id for one call (the server logs it next to x-request-id)."""
    return str(uuid.uuid4())


@sensitive_variables("secret")
def _per_key_options(api_key, *, secret: str, settings: CallSettings, project) -> dict:
    """What a per-call copy of a base client gets: the key, its owner's ids, the project's
    timeouts and retries, and (OpenAI / compatible) the base URL."""
    project = project if project is not None else api_key.project
    options = {
        "api_key": secret,
        "organization": api_key.organization.openai_org_id or None,
        "project": (project.openai_project_id if project is not None else "") or None,
        "timeout": settings.httpx_timeout,
        "max_retries": settings.max_retries,
    }
    if api_key.provider != "azure":
        options["base_url"] = api_key.base_url or OPENAI_BASE_URL
    return options


@sensitive_variables("secret")
def client_for_key(api_key, *, secret: str, settings: CallSettings, project=None):
    """A per-call client for ``api_key`` sharing the process pool.

    ``secret`` is the plaintext, decrypted by the caller just before the call; it lives
    only inside the returned client object for the duration of that call.
    """
    if api_key.provider == "azure":
        base = azure_base_client(api_key.azure_endpoint, api_key.azure_api_version)
    else:
        base = base_client()
    return base.with_options(
        **_per_key_options(api_key, secret=secret, settings=settings, project=project)
    )


@sensitive_variables("secret")
def async_client_for_key(
    api_key, *, secret: str, settings: CallSettings, project=None, loop: asyncio.AbstractEventLoop
):
    """``client_for_key`` for the async stream: a per-call copy of ``loop``'s AsyncOpenAI."""
    azure = (
        (api_key.azure_endpoint, api_key.azure_api_version) if api_key.provider == "azure" else None
    )
    base = async_base_client(loop, azure=azure)
    return base.with_options(
        **_per_key_options(api_key, secret=secret, settings=settings, project=project)
    )
