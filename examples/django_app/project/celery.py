"""The project's Celery app, configured the Django way, running batchline's tasks beside the project's own.

`celery -A project worker` runs them all: `answers.tasks` (found by autodiscovery) and `batchline.tasks` (added by
`install`), which is a module of the batchline package, so no `tasks` module collides.
"""

import os

from batchline import worker as batchline_worker
from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

app = Celery("project")
app.config_from_object("django.conf:settings", namespace="CELERY")
# batchline's broker options, queue, task events and beat sweep on this app; its settings come from CELERY_BATCHLINE_*
# in settings.py, then the BATCHLINE_* environment. The API (in views and in the callback) sends and reads through
# this app's broker and store.
batchline_worker.install(app)
app.autodiscover_tasks()
