from django.apps import AppConfig


class OrgsConfig(AppConfig):
    name = "orgs"
    verbose_name = "Organizations and projects"

    def ready(self) -> None:
        # orgs/otp.py's receivers renew a user's device generation when a device
        # changes (the two-factor gate's session memory); orgs/signals.py audits sign-ins.
        from . import otp, signals  # noqa: F401
