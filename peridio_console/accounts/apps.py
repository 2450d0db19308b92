from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "peridio_console.accounts"
    # The label the app had when it lived at the top of peridio_console: its tables
    # (peridio_console_organization, ...) and its migration history keep their names.
    label = "peridio_console"
    verbose_name = "Accounts and organizations"
    default_auto_field = "django.db.models.BigAutoField"
