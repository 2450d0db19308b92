#!/usr/bin/env python
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "peridio_console.settings")
    from django.core.management import execute_from_command_line

    from peridio_console.env import load_settings_or_exit

    load_settings_or_exit()  # a bad setting: one sentence and exit 2, not a traceback
    execute_from_command_line(sys.argv)
