from django.apps import AppConfig


class UsageConfig(AppConfig):
    name = "usage"
    verbose_name = "Usage and cost"

    def ready(self) -> None:
        # Register usage's Celery tasks in every process, the web's too: the budget queue
        # (usage/budgets.py) sends usage.budget_evaluate by name from the registry.
        from . import receivers, tasks  # noqa: F401
