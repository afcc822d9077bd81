"""The coalesced evaluation queue: usage landing queues at most one evaluation per
budget in flight (usage/budgets.py ``budget_evaluation_request``, usage/tasks.py).

Tasks are counted as Celery publishes them (the ``before_task_publish`` signal), onto the
test broker: nothing is mocked.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from celery.signals import before_task_publish
from django.core.cache import cache
from django.urls import reverse

from tests.factories import ProjectFactory
from tests.usage.conftest import response_json
from tests.usage.test_budgets import spend
from usage import tasks
from usage.budgets import budget_evaluation_request, evaluation_flag
from usage.models import Budget, BudgetAlert
from usage.services import usage_record_create

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 7, 20, 12, 0, tzinfo=UTC)


@pytest.fixture
def published():
    """The (task name, args) of every task published during the test."""
    sent: list[tuple[str, tuple]] = []

    def count(sender=None, body=None, **kwargs):
        sent.append((sender, tuple(body[0]) if body else ()))

    before_task_publish.connect(count, weak=False)
    yield sent
    before_task_publish.disconnect(count)


@pytest.fixture(autouse=True)
def _no_flags_left():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def budgets(organization, project):
    return [
        Budget.objects.create(organization=organization, amount=Decimal(100)),
        Budget.objects.create(organization=organization, project=project, amount=Decimal(10)),
    ]


def evaluations(published) -> list[tuple]:
    return [args for name, args in published if name == "usage.budget_evaluate"]


def test_a_burst_of_1000_batches_queues_one_evaluation_per_budget(
    project, budgets, published, django_capture_on_commit_callbacks
):
    other = ProjectFactory(organization=project.organization, name="Unbudgeted elsewhere")
    Budget.objects.create(organization=project.organization, project=other, amount=Decimal(5))
    for i in range(1000):
        with django_capture_on_commit_callbacks(execute=True):
            spend(project, Decimal("0.01"), NOW - timedelta(minutes=i % 50), rid=f"burst-{i}")
    assert sorted(evaluations(published)) == sorted((b.pk,) for b in budgets)


def test_an_evaluation_that_starts_lets_the_next_usage_queue_one_more(
    project, budgets, published, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        spend(project, 1, NOW, rid="first")
    assert len(evaluations(published)) == 2
    # The task deletes its flag before it evaluates: usage during the evaluation queues again.
    tasks.budget_evaluate(budgets[1].pk)
    assert cache.get(evaluation_flag(budgets[1].pk)) is None
    for i in range(5):
        with django_capture_on_commit_callbacks(execute=True):
            spend(project, 1, NOW, rid=f"during-{i}")
    assert sorted(evaluations(published)) == sorted(
        [(budgets[0].pk,), (budgets[1].pk,), (budgets[1].pk,)]
    )


def test_the_task_evaluates_and_alerts(project, budgets, published):
    spend(project, 9, datetime.now(UTC) - timedelta(minutes=5), rid="nine")
    assert tasks.budget_evaluate(budgets[1].pk) == 2  # 50 % and 80 % of $10
    assert tasks.budget_evaluate(budgets[1].pk) == 0
    assert BudgetAlert.objects.filter(budget=budgets[1]).count() == 2
    assert tasks.budget_evaluate(10**9) == 0  # a budget since deleted: nothing, quietly


def test_a_replay_or_a_project_without_budgets_queues_nothing(
    organization, project, published, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        spend(project, 1, NOW, rid="no-budget-yet")
    assert evaluations(published) == []
    Budget.objects.create(organization=organization, project=project, amount=Decimal(10))
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        _, created = usage_record_create(
            project=project, source="ingest", response=response_json(rid="no-budget-yet")
        )
    assert not created and callbacks == []  # a replay: no spend changed, no callback
    assert evaluations(published) == []


def test_ingestion_batches_queue_after_commit(
    client, project, budgets, ingest_token, published, django_capture_on_commit_callbacks
):
    _, token = ingest_token
    url = reverse("api:usage-ingest")
    for batch in range(20):
        records = [response_json(rid=f"api-{batch}-{i}") for i in range(10)]
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(
                url,
                {"records": records},
                content_type="application/json",
                headers={"authorization": f"Bearer {token}"},
            )
        assert response.status_code == 200, response.content
    assert sorted(evaluations(published)) == sorted((b.pk,) for b in budgets)
    # Sent with a countdown: a burst gathers into one evaluation.
    assert all(cache.get(evaluation_flag(b.pk)) == 1 for b in budgets)


def test_a_direct_request_sends_each_budget_once(budgets, published):
    ids = [b.pk for b in budgets]
    assert budget_evaluation_request(budget_ids=ids) == 2
    assert budget_evaluation_request(budget_ids=ids + ids) == 0
    assert len(evaluations(published)) == 2


def test_the_sweep_task_is_idempotent(project, budgets, published):
    spend(project, 9, datetime.now(UTC) - timedelta(minutes=5), rid="nine")
    assert tasks.budgets_sweep() == 2
    first = BudgetAlert.objects.count()
    assert tasks.budgets_sweep() == 2
    assert BudgetAlert.objects.count() == first == 2
