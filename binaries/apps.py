from django.apps import AppConfig


class BinariesConfig(AppConfig):
    name = "binaries"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from binaries import metrics

        metrics.connect()
