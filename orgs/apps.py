from django.apps import AppConfig


class OrgsConfig(AppConfig):
    name = "orgs"
    verbose_name = "Organizations and projects"

    def ready(self) -> None:
        # The TOTP device model lives in orgs/otp.py (see its docstring); importing it
        # here registers it. The signal handlers audit sign-ins.
        from . import otp, signals  # noqa: F401
