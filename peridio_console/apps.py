from django.apps import AppConfig
from django.core import checks

from peridio_console.checks import check_private_files


class ProjectConfig(AppConfig):
    """The project itself: no models, only its `serve` command (web server and worker) and its
    start-up checks."""

    name = "peridio_console"
    label = "peridio_project"
    verbose_name = "Peridio Console"

    def ready(self) -> None:
        checks.register(check_private_files)
