"""Read by gunicorn from the folder it starts in (`make run`, or `gunicorn peridio_console.wsgi`
run from this checkout): the master loads the settings before any worker starts, so a bad
setting stops it with one sentence and exit 2. (Left to the workers, several failing at once
make gunicorn print its own traceback.)"""

import os

from peridio_console.env import load_settings_or_exit

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "peridio_console.settings")
load_settings_or_exit()
