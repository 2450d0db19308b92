from django.apps import AppConfig


class ProjectConfig(AppConfig):
    """The project itself: no models, only its `serve` command (web server and worker)."""

    name = "peridio_console"
    label = "peridio_project"
    verbose_name = "Peridio Console"
