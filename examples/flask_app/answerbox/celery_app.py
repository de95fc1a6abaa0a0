"""Celery configured from the Flask config, with batchline's settings and tasks on the same app."""

from typing import Any

from batchline import worker as batchline_worker
from celery import Celery, Task
from flask import Flask


def celery_init_app(app: Flask) -> Celery:
    class FlaskTask(Task[Any, Any]):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            # Tasks see the Flask config (the results database) as views do.
            with app.app_context():
                return self.run(*args, **kwargs)

    celery: Celery = Celery(app.name, task_cls=FlaskTask)
    celery.config_from_object(app.config["CELERY"])
    # batchline's broker options, queue, task events and beat sweep on this app, its tasks included; settings from
    # `batchline_*` in CELERY, then the BATCHLINE_* environment. The API (in views and in the callback) sends and
    # reads through this app's broker and store.
    batchline_worker.install(celery)
    celery.conf.include = [*celery.conf.include, "answerbox.tasks"]
    celery.set_default()
    app.extensions["celery"] = celery
    return celery
