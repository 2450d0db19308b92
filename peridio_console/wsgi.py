import os
import sys

from django.core.wsgi import get_wsgi_application

from peridio_console.env import load_settings_or_exit, settings_error

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "peridio_console.settings")
if "gunicorn.arbiter" in sys.modules and (error := settings_error()):
    # gunicorn.conf.py stops the master before this; started without it, a worker that exits
    # is started again for ever, and this error stops gunicorn ("App failed to load.").
    from gunicorn.errors import AppImportError

    raise AppImportError(error)
load_settings_or_exit()  # a bad setting: one sentence and exit 2, not a traceback
application = get_wsgi_application()
