"""The budget hard limit as a pre-call hook (registered in platformadmin/apps.py).

For a project covered by an active hard-limit budget (its own or its organization's), a
console call goes only if its worst-case cost fits: the hook reserves it
(``usage.reservations.budget_reserve``, atomic across processes) and holds the reservation
until the call ends; the client layer settles it right after the usage record is written.

Refused, with a message naming the fix, when:
- the call has no output cap (neither the request nor the project sets max output tokens):
  its cost has no upper bound;
- the model has no price in force: the worst case cannot be computed;
- spend + open reservations + this call's worst case would pass the amount;
- the budget state cannot be read (fail closed).
A project with no hard-limit budget costs one query and is never refused here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.db import DatabaseError

from platformadmin.openai.hooks import HookDecision, PreCallContext
from usage.reservations import (
    budget_reservation_settle,
    budget_reserve,
    hard_limit_budgets,
    worst_case_cost,
)

log = logging.getLogger("platformadmin.openai")


@dataclass
class BudgetHold:
    """The reservations of one call; settled once, whatever the outcome."""

    reservation_ids: tuple[int, ...]
    done: bool = False

    def settle(self, outcome) -> None:
        """Settle after the usage record is written. With no record (the write failed) or
        an unpriced one, the call's cost is not in the spend: the reservations stay until
        they expire, the conservative choice."""
        record = getattr(outcome, "record", None)
        if record is None or record.cost is None:
            log.warning(
                "budget reservations %s kept until they expire: the call's usage record "
                "was not written or is unpriced (client request id %s)",
                self.reservation_ids,
                getattr(outcome, "client_request_id", "-"),
            )
            self.done = True
            return
        self._close()

    def release(self) -> None:
        self._close()

    def _close(self) -> None:
        if self.done:
            return
        self.done = True
        try:
            budget_reservation_settle(reservation_ids=self.reservation_ids)
        except DatabaseError as exc:
            # Not hidden: logged, and the reservations stop counting when they expire
            # (until then they over-count, which refuses more, never less).
            log.error(
                "budget reservations %s not settled (%s: %s); they expire by themselves",
                self.reservation_ids,
                type(exc).__name__,
                exc,
            )


def budget_pre_call_hook(context: PreCallContext) -> HookDecision | None:
    """Reserve the call's worst case against the project's hard-limit budgets."""
    project = context.project
    try:
        budgets = hard_limit_budgets(project=project)
        if not budgets:
            return None
        if not context.max_output_tokens:
            return HookDecision(
                False,
                f"{project.name} is under a hard-limit budget, so every call needs an upper "
                "bound on its cost: enter max output tokens, or ask a project owner to set "
                "the project's output-token cap.",
                "BudgetUncapped",
            )
        worst = worst_case_cost(
            project=project,
            model=context.model,
            prompt_bytes=context.prompt_bytes,
            max_output_tokens=context.max_output_tokens,
        )
    except DatabaseError as exc:
        log.warning("budget state of project %s unreadable: %s", project.public_id, exc)
        return HookDecision(
            False,
            f"The hard-limit budget of {project.name} could not be read "
            f"(the database answered {type(exc).__name__}), so this call was refused and "
            "not sent. Try again in a moment; if it keeps happening, an operator should "
            "check the database.",
            "BudgetUnavailable",
        )
    if worst is None:
        return HookDecision(
            False,
            f"{context.model} has no price in force, so under {project.name}'s hard-limit "
            "budget the cost of this call cannot be bounded. Choose a priced model, or ask "
            "an administrator to enter its prices (Django admin, model prices).",
            "BudgetUnpriced",
        )
    result = budget_reserve(project=project, amount=worst)
    if not result.allowed:
        return HookDecision(False, result.message, result.error_type)
    return HookDecision(True, hold=BudgetHold(result.reservation_ids))
