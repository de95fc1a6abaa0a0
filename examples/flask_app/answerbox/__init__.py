"""A Flask app that enqueues batchline jobs and keeps their answers in SQLite: `flask --app answerbox run`."""

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask

from . import store, views
from .celery_app import celery_init_app


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.config.from_mapping(
        RESULTS_DB=str(Path(app.instance_path) / "answers.sqlite3"),
        # The model the view asks; "test" needs no key. Provider keys and base URLs (OPENAI_API_KEY, ...) are read by
        # the workers from their own environment, never from this config.
        BATCHLINE_MODEL=os.environ.get("BATCHLINE_EXAMPLE_MODEL", "test"),
        # Celery's settings, lowercase as Celery names them; batchline's are the `batchline_*` ones.
        CELERY={
            "broker_url": os.environ.get("CELERY_BROKER_URL"),  # unset: batchline's embedded default
            "batchline_allowed_callbacks": ["answerbox.save_results", "answerbox.save_agent_outputs"],
            "batchline_allowed_agents": ["answerbox.agents"],
        },
    )
    app.config.from_prefixed_env()  # FLASK_RESULTS_DB=..., FLASK_SECRET_KEY=...
    if config is not None:
        app.config.from_mapping(config)
    store.init(app.config["RESULTS_DB"])
    celery_init_app(app)
    app.register_blueprint(views.bp)
    return app
