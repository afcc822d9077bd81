"""The Celery app. Settings come from Django's settings under the CELERY_ prefix."""

from __future__ import annotations

import os
from pathlib import Path

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "platformadmin.settings")

app = Celery("platformadmin")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_configure.connect
def _make_filesystem_queue_dirs(sender, source=None, **kwargs) -> None:
    """The embedded filesystem:// transport needs its folders to exist.

    Connected to ``on_after_configure``, not ``on_configure``: the latter is sent while
    the configuration is still being loaded, so reading ``sender.conf`` there re-enters
    the loading and ends in a RecursionError (logged on the first task sent).
    """
    conf = source if source is not None else sender.conf
    options = conf.broker_transport_options or {}
    for key in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder"):
        if options.get(key):
            Path(options[key]).mkdir(parents=True, exist_ok=True)
