import os
from pathlib import Path
from typing import Any

from celery import Celery
from kombu.transport import TRANSPORT_ALIASES

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "peridio_console.settings")

# The embedded broker: kombu's filesystem transport with each message renamed into its queue
# whole (broker.py). Registered for the URL's scheme, so every connection to filesystem://
# (the web tier's, the worker's, a test's) gets it, and any other URL gets its own transport.
TRANSPORT_ALIASES["filesystem"] = "peridio_console.broker:Transport"

app = Celery("peridio_console")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_configure.connect
def _make_broker_folders(sender: Celery, **kwargs: Any) -> None:
    """The embedded (filesystem) broker's queue folder, made when the broker is first set up."""
    options = sender.conf.broker_transport_options or {}
    for key in ("data_folder_in", "data_folder_out"):
        if options.get(key):
            Path(options[key]).mkdir(mode=0o700, parents=True, exist_ok=True)
