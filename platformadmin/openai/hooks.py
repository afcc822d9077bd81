"""Hooks around a model call that other parts of the console fill in.

The budget hard limit (the workers issue) registers a pre-call hook; with no hook
registered every call is allowed. A hook returns ``None`` (no opinion) or a
``HookDecision``; the first refusal wins and its message is shown on the page.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class PreCallContext:
    project: object
    api_key: object
    model: str
    estimated_tokens: int
    user: object | None = None
    source: str = "playground"


@dataclass(frozen=True)
class HookDecision:
    allowed: bool
    message: str = ""


PreCallHook = Callable[[PreCallContext], HookDecision | None]

_pre_call_hooks: list[PreCallHook] = []


def register_pre_call_hook(func: PreCallHook) -> PreCallHook:
    """Register ``func`` (usable as a decorator). Registering twice is a no-op."""
    if func not in _pre_call_hooks:
        _pre_call_hooks.append(func)
    return func


def unregister_pre_call_hook(func: PreCallHook) -> None:
    if func in _pre_call_hooks:
        _pre_call_hooks.remove(func)


def run_pre_call_hooks(context: PreCallContext) -> HookDecision:
    for hook in list(_pre_call_hooks):
        decision = hook(context)
        if decision is not None and not decision.allowed:
            return decision
    return HookDecision(True)
