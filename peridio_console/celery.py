import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "peridio_console.settings")

app = Celery("peridio_console")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
