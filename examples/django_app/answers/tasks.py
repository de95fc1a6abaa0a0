"""The project's own tasks. batchline's live in `batchline.tasks`; these are found by Celery's autodiscovery."""

from batchline import results_callback
from celery import shared_task
from django.db import transaction

from .models import Answer


@shared_task(name="answers.save_results", acks_late=True, reject_on_worker_lost=True)
@results_callback  # called with (job_id, custom_ids); gets the chunk's results as a stream
def save_results(job_id: str, results) -> int:
    """Store one delivered chunk of results. A redelivered chunk rewrites the same rows: it never adds any."""
    saved = 0
    with transaction.atomic():  # a chunk is saved whole or not at all
        for result in results:
            if result.is_successful and result.response is not None:
                fields = {"text": result.response.text or "", "error": ""}
            else:
                error = result.error
                fields = {"text": "", "error": f"{error.code}: {error.message}" if error else "no result"}
            Answer.objects.update_or_create(job_id=job_id, custom_id=result.custom_id, defaults=fields)
            saved += 1
    return saved
