from django.apps import AppConfig


class PlatformAdminConfig(AppConfig):
    name = "platformadmin"
    verbose_name = "Platform console"

    def ready(self) -> None:
        # The budget hard limit: every console call passes through it (docs/budgets.md).
        from platformadmin.openai import budget_hook, hooks  # the app registry must be ready

        hooks.register_pre_call_hook(budget_hook.budget_pre_call_hook)
