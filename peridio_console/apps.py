from django.apps import AppConfig


class PeridioConsoleConfig(AppConfig):
    name = "peridio_console"
    verbose_name = "Accounts and organizations"
    default_auto_field = "django.db.models.BigAutoField"
