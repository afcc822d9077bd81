"""Hooks around a model call that other parts of the console fill in.

The budget hard limit (platformadmin/openai/budget_hook.py) registers a pre-call hook; with
no hook registered every call is allowed. A hook returns ``None`` (no opinion) or a
``HookDecision``; the first refusal wins and its message is shown on the page.

A hook that allows a call may hold something for it (a budget reservation): the decision's
``hold``. The client layer then tells every hold how the call ended, exactly once: ``settle``
after the call's usage record is written (success, error, cut or stopped stream, timeout),
or ``release`` when the call was not sent after all (a later check refused it). A hold of
an earlier hook is released when a later hook refuses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class PreCallContext:
    project: object
    api_key: object
    model: str
    estimated_tokens: int  # the prompt at four characters per token + the output cap
    user: object | None = None
    source: str = "playground"
    # The output cap the call is sent with (the request's or the project's); None: uncapped.
    max_output_tokens: int | None = None
    # UTF-8 length of instructions + input: a bound on the input tokens (see budget_hook).
    prompt_bytes: int = 0


class CallHold(Protocol):
    """Something a hook holds for a call until it ends (e.g. a budget reservation)."""

    def settle(self, outcome: Any) -> None:
        """The call ended and its usage record was written (``outcome.record``; None when
        the write failed). Must not raise: the reply still goes to the user."""

    def release(self) -> None:
        """The call was not sent (refused by a later check); nothing was recorded."""


@dataclass(frozen=True)
class HookDecision:
    allowed: bool
    message: str = ""
    error_type: str = "BudgetExceeded"
    hold: CallHold | None = None


@dataclass(frozen=True)
class PreCallResult:
    """All hooks' answer: allowed or the first refusal, and the holds of an allowed call."""

    allowed: bool
    message: str = ""
    error_type: str = ""
    holds: tuple[CallHold, ...] = ()

    def settle(self, outcome: Any) -> None:
        for hold in self.holds:
            hold.settle(outcome)

    def release(self) -> None:
        for hold in self.holds:
            hold.release()


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


def registered_pre_call_hooks() -> tuple[PreCallHook, ...]:
    return tuple(_pre_call_hooks)


def run_pre_call_hooks(context: PreCallContext) -> PreCallResult:
    """Ask every hook in order; on a refusal, release what earlier hooks hold and stop."""
    holds: list[CallHold] = []
    for hook in list(_pre_call_hooks):
        decision = hook(context)
        if decision is None:
            continue
        if not decision.allowed:
            PreCallResult(True, holds=tuple(holds)).release()
            return PreCallResult(False, decision.message, decision.error_type)
        if decision.hold is not None:
            holds.append(decision.hold)
    return PreCallResult(True, holds=tuple(holds))
