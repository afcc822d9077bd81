from django.apps import AppConfig


class PlatformAdminConfig(AppConfig):
    name = "platformadmin"
    verbose_name = "Platform console"
