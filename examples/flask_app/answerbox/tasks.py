"""The app's own tasks. batchline's live in `batchline.tasks`, so no `tasks` module collides."""

from batchline import results_callback
from batchline.agents import results_sync as agent_results_sync
from celery import shared_task
from flask import current_app

from . import store


@shared_task(name="answerbox.save_results", acks_late=True, reject_on_worker_lost=True)
@results_callback  # called with (job_id, custom_ids); gets the chunk's results as a stream
def save_results(job_id: str, results) -> int:
    """Store one delivered chunk of results. A redelivered chunk rewrites the same rows: it never adds any."""
    rows = []
    for result in results:
        if result.is_successful and result.response is not None:
            rows.append((result.custom_id, result.response.text or "", ""))
        else:
            error = result.error
            rows.append((result.custom_id, "", f"{error.code}: {error.message}" if error else "no result"))
    store.save(current_app.config["RESULTS_DB"], job_id, rows)
    return len(rows)


@shared_task(name="answerbox.save_agent_outputs", acks_late=True, reject_on_worker_lost=True)
def save_agent_outputs(job_id: str, custom_ids: list[str]) -> int:
    """Store the outputs of agent runs as they end (a run's output is stored once; a redelivery rewrites its row)."""
    rows = [
        (run.custom_id, str(run.output or ""), run.error or "")
        for run in agent_results_sync(job_id, custom_ids=custom_ids)
    ]
    store.save(current_app.config["RESULTS_DB"], job_id, rows)
    return len(rows)
