"""The project's own tasks. batchline's live in `batchline.tasks`; these are found by Celery's autodiscovery."""

from batchline import batch_results_sync
from celery import shared_task
from django.db import transaction

from .models import Answer


@shared_task(name="answers.save_results", acks_late=True, reject_on_worker_lost=True)
def save_results(job_id: str, custom_ids: list[str]) -> int:
    """Store one delivered chunk of results. A redelivered chunk rewrites the same rows: it never adds any."""
    results = batch_results_sync(job_id, custom_ids=custom_ids)
    with transaction.atomic():  # a chunk is saved whole or not at all
        for result in results:
            if result.is_successful and result.response is not None:
                fields = {"text": result.response.text or "", "error": ""}
            else:
                error = result.error
                fields = {"text": "", "error": f"{error.code}: {error.message}" if error else "no result"}
            Answer.objects.update_or_create(job_id=job_id, custom_id=result.custom_id, defaults=fields)
    return len(results)
