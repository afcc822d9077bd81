"""The Admin API half of the OpenAI simulator (``/v1/organization/...``).

One simulated OpenAI organization per admin key (``sk-admin-…``), so tests that use
different admin keys never see each other's objects. Shapes follow the SDK's types
(``openai.types.admin.organization``): projects, service accounts (their key's value is
returned once, at creation), project API keys (listed with ``redacted_value``; there is no
create), project users, rate limits, spend limits and alerts (amounts in cents), the
audit log, and the usage (``/organization/usage/completions``) and costs
(``/organization/costs``) buckets of the model calls this simulator served with the
organization's keys, priced with the console's own price rule (``usage.pricing``) from the
catalog seed, so a reconciliation with every call reported shows no difference.

Faults, as for the model routes, come from markers in the admin key (``fault-401``,
``fault-429``, ``fault-500``) or from the organization's ``inject`` list, which tests use
for a failure in the middle of a multi-page listing and a create whose reply comes too
late (the object exists upstream, the client timed out).
"""

from __future__ import annotations

import json
import math
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from usage.pricing import Price, Usage, compute_cost

from .simulator_errors import SimulatorError

if TYPE_CHECKING:  # the simulator passes itself and its handler; no import cycle at run time
    from .simulator import Call, OpenAISimulator, _Handler  # noqa: F401

ADMIN_KEY_PREFIX = "sk-admin-"
DAY = 86_400
LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX = 20, 100
# Buckets per page of the usage and costs endpoints (the API's defaults and maxima).
USAGE_LIMITS = {"1d": (7, 31), "1h": (24, 168), "1m": (60, 1440)}
COSTS_LIMITS = (7, 180)
USAGE_GROUPS = {"project_id", "user_id", "api_key_id", "model", "batch", "service_tier"}
COSTS_GROUPS = {"project_id", "line_item", "api_key_id"}


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def _redacted(value: str) -> str:
    return f"{value[:8]}…{value[-4:]}" if len(value) > 12 else "sk-…"


def _load_prices(catalog_file: Path) -> dict[str, Price]:
    """model id -> list price from the catalog seed (the same file the console seeds)."""
    try:
        facts = json.loads(catalog_file.read_text())
    except (OSError, ValueError):
        return {}
    prices = {}
    for row in facts.get("models", []):
        prices[row["id"]] = Price(
            date(2000, 1, 1),
            _dec(row.get("input")),
            _dec(row.get("cached_input")),
            _dec(row.get("output")),
        )
    return prices


def _dec(value) -> Decimal | None:
    return None if value is None else Decimal(str(value))


@dataclass
class Injected:
    """A fault a test arms: ``status`` for requests matching ``method`` and ``path``
    (a regex); ``with_after`` only for the pages after the first (a listing that fails in
    its middle); ``delay`` seconds before a create's reply (the object already exists);
    ``times`` how many requests it hits (None: all)."""

    method: str
    path: str
    status: int = 500
    with_after: bool = False
    delay: float = 0.0
    times: int | None = 1
    retry_after: int | None = None

    def matches(self, method: str, path: str, query: dict) -> bool:
        if self.times is not None and self.times <= 0:
            return False
        if method != self.method or not re.search(self.path, path):
            return False
        return not self.with_after or bool(query.get("after") or query.get("page"))


@dataclass
class UpstreamOrg:
    """What OpenAI holds for one organization, in insertion order (lists page in it)."""

    admin_key: str
    projects: dict[str, dict] = field(default_factory=dict)
    service_accounts: dict[str, dict] = field(default_factory=dict)  # id -> {.., project_id}
    api_keys: dict[str, dict] = field(default_factory=dict)  # id -> {.., project_id, value}
    users: dict[str, dict[str, dict]] = field(default_factory=dict)  # project -> id -> user
    rate_limits: dict[str, dict[str, dict]] = field(default_factory=dict)  # project -> id -> rl
    spend_limits: dict[str, dict] = field(default_factory=dict)  # "org" or project id -> limit
    spend_alerts: dict[str, dict[str, dict]] = field(default_factory=dict)  # scope -> id -> a
    audit_log: list[dict] = field(default_factory=list)
    calls: list[dict] = field(default_factory=list)  # one per model call served
    inject: list[Injected] = field(default_factory=list)
    owner_email: str = "owner@example.com"

    # -- helpers tests call directly (objects made "in OpenAI's dashboard") -----------
    def add_project(self, name: str, *, archived: bool = False, created_at: int | None = None):
        project_id = _new_id("proj")
        now = created_at or int(time.time())
        self.projects[project_id] = {
            "id": project_id,
            "object": "organization.project",
            "name": name,
            "created_at": now,
            "archived_at": now if archived else None,
            "status": "archived" if archived else "active",
            "external_key_id": None,
            "residency": None,
        }
        self.rate_limits[project_id] = {}
        for model in ("gpt-4.1-mini", "gpt-5.4-mini"):
            rl_id = f"rl-{model}"
            self.rate_limits[project_id][rl_id] = {
                "id": rl_id,
                "object": "project.rate_limit",
                "model": model,
                "max_requests_per_1_minute": 500,
                "max_tokens_per_1_minute": 200_000,
                "max_requests_per_1_day": None,
                "max_images_per_1_minute": None,
                "max_audio_megabytes_per_1_minute": None,
                "batch_1_day_max_input_tokens": None,
            }
        self.users[project_id] = {}
        self.event("project.created", project_id=project_id, data={"id": project_id})
        return self.projects[project_id]

    def add_user(self, project_id: str, *, email: str, role: str = "member") -> dict:
        user_id = _new_id("user")
        self.users[project_id][user_id] = {
            "id": user_id,
            "object": "organization.project.user",
            "email": email,
            "name": email.split("@")[0],
            "role": role,
            "added_at": int(time.time()),
        }
        return self.users[project_id][user_id]

    def add_service_account(self, project_id: str, name: str) -> dict:
        account_id = _new_id("svc_acct")
        self.service_accounts[account_id] = {
            "id": account_id,
            "object": "organization.project.service_account",
            "name": name,
            "role": "member",
            "created_at": int(time.time()),
            "project_id": project_id,
        }
        self.event("service_account.created", project_id=project_id, data={"id": account_id})
        return self.service_accounts[account_id]

    def add_key(
        self,
        project_id: str,
        *,
        name: str,
        service_account_id: str | None = None,
        value: str | None = None,
        expires_in: int | None = None,
    ) -> dict:
        """A project key, as one made in OpenAI's dashboard (user-owned) or for a service
        account. Returns the row with its ``value`` (the simulator keeps it to serve calls)."""
        key_id = _new_id("key")
        now = int(time.time())
        if service_account_id:
            account = self.service_accounts[service_account_id]
            owner = {
                "type": "service_account",
                "service_account": {
                    "id": account["id"],
                    "name": account["name"],
                    "role": account["role"],
                    "created_at": account["created_at"],
                },
                "user": None,
            }
            value = value or f"sk-svcacct-{secrets.token_urlsafe(36)}"
        else:
            owner = {
                "type": "user",
                "user": {
                    "id": "user_owner",
                    "email": self.owner_email,
                    "name": "Owner",
                    "role": "owner",
                    "created_at": now,
                },
                "service_account": None,
            }
            value = value or f"sk-proj-{secrets.token_urlsafe(48)}"
        self.api_keys[key_id] = {
            "id": key_id,
            "object": "organization.project.api_key",
            "name": name,
            "redacted_value": _redacted(value),
            "created_at": now,
            "last_used_at": None,
            "expires_at": now + expires_in if expires_in else None,
            "owner": owner,
            "owner_project_access": "active",
            "project_id": project_id,
            "value": value,
        }
        self.event("api_key.created", project_id=project_id, data={"id": key_id})
        return self.api_keys[key_id]

    def delete_key(self, key_id: str) -> None:
        row = self.api_keys.pop(key_id)
        self.event("api_key.deleted", project_id=row["project_id"], data={"id": key_id})

    def event(self, type_: str, *, project_id: str | None = None, data: dict | None = None):
        """One audit-log entry (newest last here; the API lists newest first)."""
        project = self.projects.get(project_id or "")
        entry = {
            "id": _new_id("audit_log"),
            "type": type_,
            "effective_at": int(time.time()),
            "actor": {
                "type": "session",
                "session": {
                    "user": {"id": "user_owner", "email": self.owner_email},
                    "ip_address": "203.0.113.7",
                },
            },
            "project": {"id": project["id"], "name": project["name"]} if project else None,
            type_: data or {},
        }
        self.audit_log.append(entry)
        return entry


class AdminAPI:
    """The Admin API routes and their state, owned by one ``OpenAISimulator``."""

    def __init__(self, simulator: OpenAISimulator, catalog_file: Path):
        self.simulator = simulator
        self.prices = _load_prices(catalog_file)
        self._lock = threading.RLock()
        self._orgs: dict[str, UpstreamOrg] = {}
        self._keys: dict[str, tuple[UpstreamOrg, str]] = {}  # key value -> (org, key id)

    # -- state -----------------------------------------------------------------------
    def org(self, admin_key: str) -> UpstreamOrg:
        """The simulated organization behind an admin key (made on first use)."""
        with self._lock:
            if admin_key not in self._orgs:
                self._orgs[admin_key] = UpstreamOrg(admin_key=admin_key)
            return self._orgs[admin_key]

    def reset(self) -> None:
        with self._lock:
            self._orgs.clear()
            self._keys.clear()

    def _index_key(self, org: UpstreamOrg, row: dict) -> None:
        self._keys[row["value"]] = (org, row["id"])

    def record_call(self, *, key: str, model: str, usage: dict, service_tier: str | None) -> None:
        """A model call served with ``key``: counted in its organization's usage and costs
        (calls with keys no simulated organization issued are not anyone's usage)."""
        with self._lock:
            for org in self._orgs.values():  # keys made by helpers are indexed lazily
                for row in org.api_keys.values():
                    self._keys.setdefault(row["value"], (org, row["id"]))
            found = self._keys.get(key)
            if not found:
                return
            org, key_id = found
            row = org.api_keys.get(key_id)
            if row is None:
                return
            now = int(time.time())
            row["last_used_at"] = now
            base = model.split("-fault-")[0]
            details = usage.get("input_tokens_details") or {}
            counts = Usage(
                input_tokens=int(usage.get("input_tokens") or 0),
                cached_input_tokens=int(details.get("cached_tokens") or 0),
                output_tokens=int(usage.get("output_tokens") or 0),
                total_tokens=int(usage.get("total_tokens") or 0),
            )
            price = self.prices.get(base)
            # Line items as OpenAI's Costs API names them ("<model>, input" …), each priced
            # with the console's one price rule on its own share of the tokens.
            uncached = counts.input_tokens - min(counts.cached_input_tokens, counts.input_tokens)
            parts = {
                f"{base}, input": Usage(input_tokens=uncached),
                f"{base}, cached input": Usage(
                    input_tokens=counts.cached_input_tokens,
                    cached_input_tokens=counts.cached_input_tokens,
                ),
                f"{base}, output": Usage(output_tokens=counts.output_tokens),
            }
            line_items = {
                name: compute_cost(part, price, service_tier=service_tier) or Decimal(0)
                for name, part in parts.items()
                if not part.is_empty
            }
            org.calls.append(
                {
                    "time": now,
                    "project_id": row["project_id"],
                    "api_key_id": key_id,
                    "model": base,
                    "input_tokens": counts.input_tokens,
                    "input_cached_tokens": counts.cached_input_tokens,
                    "output_tokens": counts.output_tokens,
                    "line_items": line_items,
                    "cost": sum(line_items.values(), Decimal(0)),
                }
            )

    # -- routing ---------------------------------------------------------------------
    def routes(self) -> list[tuple[str, re.Pattern, Callable]]:
        p = r"/v1/organization/projects/(?P<project>[^/]+)"
        table = [
            ("GET", r"/v1/organization/projects", self.list_projects),
            ("POST", r"/v1/organization/projects", self.create_project),
            ("GET", p, self.retrieve_project),
            ("POST", p, self.update_project),
            ("POST", p + "/archive", self.archive_project),
            ("GET", p + "/api_keys", self.list_keys),
            ("GET", p + r"/api_keys/(?P<key>[^/]+)", self.retrieve_key),
            ("DELETE", p + r"/api_keys/(?P<key>[^/]+)", self.delete_key),
            ("GET", p + "/service_accounts", self.list_service_accounts),
            ("POST", p + "/service_accounts", self.create_service_account),
            ("GET", p + r"/service_accounts/(?P<account>[^/]+)", self.retrieve_service_account),
            ("DELETE", p + r"/service_accounts/(?P<account>[^/]+)", self.delete_service_account),
            (
                "POST",
                p + r"/service_accounts/(?P<account>[^/]+)/api_keys",
                self.create_service_account_key,
            ),
            ("GET", p + "/users", self.list_users),
            ("GET", p + "/rate_limits", self.list_rate_limits),
            ("POST", p + r"/rate_limits/(?P<limit>[^/]+)", self.update_rate_limit),
            ("GET", p + "/spend_limit", self.retrieve_spend_limit),
            ("POST", p + "/spend_limit", self.update_spend_limit),
            ("DELETE", p + "/spend_limit", self.delete_spend_limit),
            ("GET", p + "/spend_alerts", self.list_spend_alerts),
            ("POST", p + "/spend_alerts", self.create_spend_alert),
            ("POST", p + r"/spend_alerts/(?P<alert>[^/]+)", self.update_spend_alert),
            ("DELETE", p + r"/spend_alerts/(?P<alert>[^/]+)", self.delete_spend_alert),
            ("GET", r"/v1/organization/spend_limit", self.retrieve_spend_limit),
            ("POST", r"/v1/organization/spend_limit", self.update_spend_limit),
            ("DELETE", r"/v1/organization/spend_limit", self.delete_spend_limit),
            ("GET", r"/v1/organization/spend_alerts", self.list_spend_alerts),
            ("POST", r"/v1/organization/spend_alerts", self.create_spend_alert),
            ("POST", r"/v1/organization/spend_alerts/(?P<alert>[^/]+)", self.update_spend_alert),
            (
                "DELETE",
                r"/v1/organization/spend_alerts/(?P<alert>[^/]+)",
                self.delete_spend_alert,
            ),
            ("GET", r"/v1/organization/audit_logs", self.list_audit_logs),
            ("GET", r"/v1/organization/usage/completions", self.usage_completions),
            ("GET", r"/v1/organization/costs", self.costs),
        ]
        return [(m, re.compile(f"^{path}$"), self._guarded(func)) for m, path, func in table]

    def _guarded(self, func: Callable) -> Callable:
        def route(call: Call, handler: _Handler) -> None:
            org = self._authorize(call)
            delay = self._injected(org, call)
            with self._lock:
                func(org, call, handler, delay)

        return route

    def _authorize(self, call: Call) -> UpstreamOrg:
        from_key = self.simulator.faults(call.key)
        if not call.key.startswith(ADMIN_KEY_PREFIX) or "401" in from_key:
            raise self._error(
                401,
                "Incorrect API key provided. Admin API calls need an admin key (sk-admin-…).",
                code="invalid_api_key",
            )
        if "429" in from_key:
            raise self._rate_limited(1)
        if "500" in from_key:
            raise self._error(500, "The server had an error.", code="server_error")
        return self.org(call.key)

    def _injected(self, org: UpstreamOrg, call: Call) -> float:
        """Apply an armed fault; return the delay a create must wait before replying."""
        with self._lock:
            for fault in org.inject:
                if not fault.matches(call.method, call.path, call.query):
                    continue
                if fault.times is not None:
                    fault.times -= 1
                if fault.delay:
                    return fault.delay
                if fault.status == 429:
                    raise self._rate_limited(fault.retry_after or 1)
                raise self._error(
                    fault.status, "The server had an error (injected).", code="server_error"
                )
        return 0.0

    def _error(self, status: int, message: str, *, code: str, param: str | None = None):
        type_ = "invalid_request_error" if status < 500 else "server_error"
        return SimulatorError(status, message, type_=type_, code=code, param=param)

    def _rate_limited(self, seconds: int):
        error = self._error(429, f"Rate limit reached. Try again in {seconds}s.", code="rate_limit")
        error.headers = {"retry-after": str(seconds)}
        return error

    # -- listing and replies -----------------------------------------------------------
    @staticmethod
    def _q(call: Call, name: str, default: str | None = None) -> str | None:
        values = call.query.get(name) or call.query.get(f"{name}[]")
        return values[0] if values else default

    def _page(self, call: Call, items: list[dict], handler: _Handler, strip=()) -> None:
        """A ConversationCursorPage: ``after`` an id, ``limit`` ≤ 100."""
        try:
            limit = int(self._q(call, "limit", str(LIST_LIMIT_DEFAULT)))
        except ValueError:
            raise self._error(400, "limit must be an integer", code="invalid_value") from None
        if not 1 <= limit <= LIST_LIMIT_MAX:
            raise self._error(400, "limit must be between 1 and 100", code="invalid_value")
        after = self._q(call, "after")
        if after:
            ids = [item["id"] for item in items]
            if after not in ids:
                raise self._error(400, f"Invalid 'after': {after}", code="invalid_value")
            items = items[ids.index(after) + 1 :]
        page = [{k: v for k, v in item.items() if k not in strip} for item in items[:limit]]
        handler.send_json(
            200,
            {
                "object": "list",
                "data": page,
                "first_id": page[0]["id"] if page else None,
                "last_id": page[-1]["id"] if page else None,
                "has_more": len(items) > limit,
            },
        )

    def _project(self, org: UpstreamOrg, call: Call) -> dict:
        project = org.projects.get(call.match.group("project"))
        if project is None:
            raise self._error(404, "No such project.", code="not_found")
        return project

    @staticmethod
    def _reply_later(handler: _Handler, delay: float, status: int, payload: dict) -> None:
        """Reply after ``delay`` (an injected slow create: the object already exists)."""
        if delay:
            time.sleep(delay)
        try:
            handler.send_json(status, payload)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up waiting
            handler.close_connection = True

    # -- projects -----------------------------------------------------------------------
    def list_projects(self, org, call, handler, delay) -> None:
        archived = (self._q(call, "include_archived") or "false").lower() == "true"
        items = [p for p in org.projects.values() if archived or p["archived_at"] is None]
        self._page(call, items, handler)

    def create_project(self, org, call, handler, delay) -> None:
        name = (call.body.get("name") or "").strip()
        if not name:
            raise self._error(
                400, "Missing required parameter: 'name'.", code="missing", param="name"
            )
        project = org.add_project(name)
        self._reply_later(handler, delay, 200, project)

    def retrieve_project(self, org, call, handler, delay) -> None:
        handler.send_json(200, self._project(org, call))

    def update_project(self, org, call, handler, delay) -> None:
        project = self._project(org, call)
        if call.body.get("name"):
            project["name"] = call.body["name"]
            org.event("project.updated", project_id=project["id"], data={"id": project["id"]})
        handler.send_json(200, project)

    def archive_project(self, org, call, handler, delay) -> None:
        project = self._project(org, call)
        if project["archived_at"] is None:
            project["archived_at"], project["status"] = int(time.time()), "archived"
            org.event("project.archived", project_id=project["id"], data={"id": project["id"]})
        handler.send_json(200, project)

    # -- keys and service accounts ------------------------------------------------------
    def _keys_of(self, org: UpstreamOrg, project_id: str) -> list[dict]:
        return [k for k in org.api_keys.values() if k["project_id"] == project_id]

    def list_keys(self, org, call, handler, delay) -> None:
        project = self._project(org, call)
        keys = self._keys_of(org, project["id"])
        # Without owner_project_access the real API may leave some keys out: do the same
        # (keys whose owner lost project access), so a console that forgets it is caught.
        if not self._q(call, "owner_project_access"):
            keys = [k for k in keys if k["owner"]["type"] != "service_account"]
        self._page(call, keys, handler, strip=("project_id", "value"))

    def _key(self, org: UpstreamOrg, call: Call) -> dict:
        project = self._project(org, call)
        row = org.api_keys.get(call.match.group("key"))
        if row is None or row["project_id"] != project["id"]:
            raise self._error(404, "No such API key.", code="not_found")
        return row

    def retrieve_key(self, org, call, handler, delay) -> None:
        row = self._key(org, call)
        handler.send_json(200, {k: v for k, v in row.items() if k not in ("project_id", "value")})

    def delete_key(self, org, call, handler, delay) -> None:
        row = self._key(org, call)
        org.delete_key(row["id"])
        self._keys.pop(row["value"], None)
        handler.send_json(
            200,
            {"id": row["id"], "object": "organization.project.api_key.deleted", "deleted": True},
        )

    def list_service_accounts(self, org, call, handler, delay) -> None:
        project = self._project(org, call)
        items = [a for a in org.service_accounts.values() if a["project_id"] == project["id"]]
        self._page(call, items, handler, strip=("project_id",))

    def _account(self, org: UpstreamOrg, call: Call) -> dict:
        project = self._project(org, call)
        account = org.service_accounts.get(call.match.group("account"))
        if account is None or account["project_id"] != project["id"]:
            raise self._error(404, "No such service account.", code="not_found")
        return account

    def retrieve_service_account(self, org, call, handler, delay) -> None:
        account = self._account(org, call)
        handler.send_json(200, {k: v for k, v in account.items() if k != "project_id"})

    def delete_service_account(self, org, call, handler, delay) -> None:
        account = self._account(org, call)
        for key_id in [
            k["id"]
            for k in org.api_keys.values()
            if (k["owner"].get("service_account") or {}).get("id") == account["id"]
        ]:
            org.delete_key(key_id)
        del org.service_accounts[account["id"]]
        org.event(
            "service_account.deleted", project_id=account["project_id"], data={"id": account["id"]}
        )
        handler.send_json(
            200,
            {
                "id": account["id"],
                "object": "organization.project.service_account.deleted",
                "deleted": True,
            },
        )

    @staticmethod
    def _key_created(row: dict, object_: str) -> dict:
        return {
            "id": row["id"],
            "object": object_,
            "name": row["name"],
            "created_at": row["created_at"],
            "expires_at": row["expires_at"],
            "value": row["value"],  # the only time the value leaves the simulator
        }

    def create_service_account(self, org, call, handler, delay) -> None:
        project = self._project(org, call)
        name = (call.body.get("name") or "").strip()
        if not name:
            raise self._error(
                400, "Missing required parameter: 'name'.", code="missing", param="name"
            )
        only = bool(call.body.get("create_service_account_only"))
        account = org.add_service_account(project["id"], name)
        reply = {k: v for k, v in account.items() if k != "project_id"}
        reply["api_key"] = None
        if only:
            account["role"] = reply["role"] = "none"
        else:
            row = org.add_key(
                project["id"],
                name="Secret key",
                service_account_id=account["id"],
                expires_in=call.body.get("expires_in_seconds"),
            )
            self._index_key(org, row)
            reply["api_key"] = self._key_created(
                row, "organization.project.service_account.api_key"
            )
        self._reply_later(handler, delay, 200, reply)

    def create_service_account_key(self, org, call, handler, delay) -> None:
        account = self._account(org, call)
        expires = call.body.get("expires_in_seconds")
        if expires is not None and not (isinstance(expires, int) and 0 < expires <= 31_536_000):
            raise self._error(400, "expires_in_seconds must be 1..31536000", code="invalid_value")
        row = org.add_key(
            account["project_id"],
            name=(call.body.get("name") or "Secret key"),
            service_account_id=account["id"],
            expires_in=expires,
        )
        self._index_key(org, row)
        self._reply_later(
            handler,
            delay,
            200,
            self._key_created(row, "organization.project.service_account.api_key"),
        )

    # -- users and rate limits ----------------------------------------------------------
    def list_users(self, org, call, handler, delay) -> None:
        project = self._project(org, call)
        self._page(call, list(org.users.get(project["id"], {}).values()), handler)

    def list_rate_limits(self, org, call, handler, delay) -> None:
        project = self._project(org, call)
        self._page(call, list(org.rate_limits.get(project["id"], {}).values()), handler)

    def update_rate_limit(self, org, call, handler, delay) -> None:
        project = self._project(org, call)
        row = org.rate_limits.get(project["id"], {}).get(call.match.group("limit"))
        if row is None:
            raise self._error(404, "No such rate limit.", code="not_found")
        changed = {}
        for name in (
            "max_requests_per_1_minute",
            "max_tokens_per_1_minute",
            "max_requests_per_1_day",
            "max_images_per_1_minute",
            "max_audio_megabytes_per_1_minute",
            "batch_1_day_max_input_tokens",
        ):
            if name in call.body:
                value = call.body[name]
                if not isinstance(value, int) or value < 0:
                    raise self._error(400, f"{name} must be a whole number", code="invalid_value")
                row[name] = changed[name] = value
        org.event(
            "rate_limit.updated",
            project_id=project["id"],
            data={"id": row["id"], "changes_requested": changed},
        )
        handler.send_json(200, row)

    # -- spend limits and alerts ------------------------------------------------------------
    def _scope(self, org: UpstreamOrg, call: Call) -> tuple[str, str]:
        """("org" or the project id, the object name prefix)."""
        if "project" in call.match.groupdict():
            return self._project(org, call)["id"], "project"
        return "org", "organization"

    def retrieve_spend_limit(self, org, call, handler, delay) -> None:
        scope, prefix = self._scope(org, call)
        limit = org.spend_limits.get(scope)
        if limit is None:
            raise self._error(404, "No spend limit is set.", code="not_found")
        handler.send_json(200, limit)

    def _money_body(self, call: Call) -> int:
        for name, allowed in (("currency", "USD"), ("interval", "month")):
            if call.body.get(name) != allowed:
                raise self._error(
                    400, f"'{name}' is required and must be '{allowed}'.", code="invalid_value"
                )
        amount = call.body.get("threshold_amount")
        if not isinstance(amount, int) or isinstance(amount, bool) or amount < 0:
            raise self._error(
                400, "threshold_amount must be a whole number of cents", code="invalid_value"
            )
        return amount

    def update_spend_limit(self, org, call, handler, delay) -> None:
        scope, prefix = self._scope(org, call)
        amount = self._money_body(call)
        org.spend_limits[scope] = {
            "object": f"{prefix}.spend_limit",
            "currency": "USD",
            "interval": "month",
            "threshold_amount": amount,
            "enforcement": {"status": "enforcing"},
        }
        org.event("tenant.billing.alerts.updated", project_id=None if scope == "org" else scope)
        handler.send_json(200, org.spend_limits[scope])

    def delete_spend_limit(self, org, call, handler, delay) -> None:
        scope, prefix = self._scope(org, call)
        if org.spend_limits.pop(scope, None) is None:
            raise self._error(404, "No spend limit is set.", code="not_found")
        handler.send_json(200, {"object": f"{prefix}.spend_limit.deleted", "deleted": True})

    def list_spend_alerts(self, org, call, handler, delay) -> None:
        scope, _ = self._scope(org, call)
        self._page(call, list(org.spend_alerts.get(scope, {}).values()), handler)

    def _alert_body(self, call: Call) -> tuple[int, dict]:
        amount = self._money_body(call)
        channel = call.body.get("notification_channel") or {}
        recipients = channel.get("recipients")
        if channel.get("type") != "email" or not isinstance(recipients, list) or not recipients:
            raise self._error(
                400,
                "notification_channel must be {type: 'email', recipients: [...]}",
                code="invalid_value",
            )
        return amount, {"type": "email", "recipients": recipients, "subject_prefix": None}

    def create_spend_alert(self, org, call, handler, delay) -> None:
        scope, prefix = self._scope(org, call)
        amount, channel = self._alert_body(call)
        alert_id = _new_id("alert")
        alert = {
            "id": alert_id,
            "object": f"{prefix}.spend_alert",
            "currency": "USD",
            "interval": "month",
            "threshold_amount": amount,
            "notification_channel": channel,
        }
        org.spend_alerts.setdefault(scope, {})[alert_id] = alert
        self._reply_later(handler, delay, 200, alert)

    def _alert(self, org: UpstreamOrg, call: Call) -> tuple[str, str, dict]:
        scope, prefix = self._scope(org, call)
        alert = org.spend_alerts.get(scope, {}).get(call.match.group("alert"))
        if alert is None:
            raise self._error(404, "No such spend alert.", code="not_found")
        return scope, prefix, alert

    def update_spend_alert(self, org, call, handler, delay) -> None:
        _, _, alert = self._alert(org, call)
        amount, channel = self._alert_body(call)
        alert.update(threshold_amount=amount, notification_channel=channel)
        handler.send_json(200, alert)

    def delete_spend_alert(self, org, call, handler, delay) -> None:
        scope, prefix, alert = self._alert(org, call)
        del org.spend_alerts[scope][alert["id"]]
        handler.send_json(
            200, {"id": alert["id"], "object": f"{prefix}.spend_alert.deleted", "deleted": True}
        )

    # -- audit log ------------------------------------------------------------------------
    def list_audit_logs(self, org, call, handler, delay) -> None:
        items = list(reversed(org.audit_log))  # newest first, as the API lists them
        bounds = {
            op: int(self._q(call, f"effective_at[{op}]"))
            for op in ("gt", "gte", "lt", "lte")
            if self._q(call, f"effective_at[{op}]")
        }
        tests = {
            "gt": lambda t, b: t > b,
            "gte": lambda t, b: t >= b,
            "lt": lambda t, b: t < b,
            "lte": lambda t, b: t <= b,
        }
        items = [
            e for e in items if all(tests[op](e["effective_at"], b) for op, b in bounds.items())
        ]
        types = call.query.get("event_types[]") or call.query.get("event_types") or []
        if types:
            items = [e for e in items if e["type"] in types]
        self._page(call, items, handler)

    # -- usage and costs --------------------------------------------------------------------
    def _window(self, call: Call, width: str, limits: tuple[int, int]) -> tuple[int, int, int]:
        try:
            start = int(self._q(call, "start_time") or "")
        except ValueError:
            raise self._error(
                400, "start_time is required (Unix seconds)", code="invalid_value"
            ) from None
        end_raw = self._q(call, "end_time")
        width_s = {"1d": DAY, "1h": 3600, "1m": 60}[width]
        # No end_time: up to the end of the bucket that holds "now" (today's bucket is open).
        end = (
            int(end_raw)
            if end_raw
            else start + math.ceil((time.time() - start) / width_s) * width_s
        )
        default, maximum = limits
        limit = int(self._q(call, "limit", str(default)))
        if not 1 <= limit <= maximum:
            raise self._error(400, f"limit must be 1..{maximum}", code="invalid_value")
        page = self._q(call, "page")
        if page:
            try:
                start = int(page)
            except ValueError:
                raise self._error(400, "Invalid page cursor.", code="invalid_value") from None
        return start, end, limit

    def _buckets(
        self,
        org,
        call,
        handler,
        *,
        width_s: int,
        limit: int,
        start: int,
        end: int,
        groups: set[str],
        result,
        source: list[dict],
    ) -> None:
        """Buckets of ``width_s`` from ``start``: the rows of ``source`` in each, grouped by
        ``groups``, one ``result`` per group; ``next_page`` is where the next page starts."""
        buckets, t = [], start
        while t < end and len(buckets) < limit:
            t_end = min(t + width_s, end)
            rows = [c for c in source if t <= c["time"] < t_end]
            grouped: dict[tuple, list[dict]] = {}
            for row in rows:
                grouped.setdefault(
                    tuple(row[g] if g in groups else None for g in sorted(groups)), []
                ).append(row)
            results = [
                result(dict(zip(sorted(groups), k, strict=True)), v)
                for k, v in sorted(grouped.items(), key=lambda kv: str(kv[0]))
            ]
            buckets.append(
                {"object": "bucket", "start_time": t, "end_time": t_end, "results": results}
            )
            t = t_end
        has_more = t < end
        handler.send_json(
            200,
            {
                "object": "page",
                "data": buckets,
                "has_more": has_more,
                "next_page": str(t) if has_more else None,
            },
        )

    def _groups(self, call: Call, allowed: set[str]) -> set[str]:
        groups = set(call.query.get("group_by[]") or call.query.get("group_by") or [])
        unknown = groups - allowed
        if unknown:
            raise self._error(400, f"Invalid group_by: {sorted(unknown)}", code="invalid_value")
        return groups

    def usage_completions(self, org, call, handler, delay) -> None:
        width = self._q(call, "bucket_width", "1d")
        if width not in USAGE_LIMITS:
            raise self._error(400, "bucket_width must be 1m, 1h or 1d", code="invalid_value")
        start, end, limit = self._window(call, width, USAGE_LIMITS[width])
        groups = self._groups(call, USAGE_GROUPS)

        def result(keys: dict, rows: list[dict]) -> dict:
            return {
                "object": "organization.usage.completions.result",
                "input_tokens": sum(r["input_tokens"] for r in rows),
                "input_cached_tokens": sum(r["input_cached_tokens"] for r in rows),
                "output_tokens": sum(r["output_tokens"] for r in rows),
                "num_model_requests": len(rows),
                "input_audio_tokens": 0,
                "output_audio_tokens": 0,
                "project_id": keys.get("project_id"),
                "api_key_id": keys.get("api_key_id"),
                "model": keys.get("model"),
                "user_id": None,
                "batch": False if "batch" in groups else None,
                "service_tier": None,
            }

        width_s = {"1d": DAY, "1h": 3600, "1m": 60}[width]
        self._buckets(
            org,
            call,
            handler,
            width_s=width_s,
            limit=limit,
            start=start,
            end=end,
            groups=groups & {"project_id", "api_key_id", "model"},
            result=result,
            source=org.calls,
        )

    def costs(self, org, call, handler, delay) -> None:
        if self._q(call, "bucket_width", "1d") != "1d":
            raise self._error(400, "bucket_width must be 1d for costs", code="invalid_value")
        start, end, limit = self._window(call, "1d", COSTS_LIMITS)
        groups = self._groups(call, COSTS_GROUPS)

        def result(keys: dict, rows: list[dict]) -> dict:
            amount = sum((r["cost"] for r in rows), Decimal(0))
            return {
                "object": "organization.costs.result",
                # A float, as the API sends it: the console reads it through Decimal(str()).
                "amount": {"value": float(amount), "currency": "usd"},
                "line_item": keys.get("line_item"),
                "project_id": keys.get("project_id"),
                "api_key_id": keys.get("api_key_id"),
                "quantity": None,
                "quantity_unit": None,
            }

        self._buckets(
            org,
            call,
            handler,
            width_s=DAY,
            limit=limit,
            start=start,
            end=end,
            groups=groups,
            result=result,
            source=[  # one row per line item of each call
                {**call_row, "line_item": name, "cost": amount}
                for call_row in org.calls
                for name, amount in call_row["line_items"].items()
            ],
        )


def day_start(when: datetime) -> int:
    """Unix seconds of the UTC midnight that starts ``when``'s day (bucket boundaries)."""
    day = when.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return math.floor(day.timestamp())
