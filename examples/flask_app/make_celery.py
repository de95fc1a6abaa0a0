"""The worker's entry point: `celery -A make_celery worker` runs batchline's tasks and this app's callback."""

from answerbox import create_app

flask_app = create_app()
celery_app = flask_app.extensions["celery"]
