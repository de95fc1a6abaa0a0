"""POST prompts to enqueue a batch job (the answer comes back at once), GET its progress and saved answers."""

import json

from batchline import BatchInputError, JobNotFound, batch_create_sync, batch_status_sync
from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST
from pydantic_ai import ModelRequest

from .models import Answer

MAX_PROMPTS = 10_000
CHUNK_SIZE = 100
"""Results per call of the callback task."""


def custom_id(index: int) -> str:
    return f"prompt-{index:05d}"  # sorts in prompt order


@csrf_exempt  # a JSON API with no cookie session: there is no logged-in browser for a forged request to ride on
@require_POST
def create_job(request: HttpRequest) -> JsonResponse:
    try:
        prompts = json.loads(request.body)["prompts"]
    except (ValueError, KeyError, TypeError):
        prompts = None
    if (
        not isinstance(prompts, list)
        or not 0 < len(prompts) <= MAX_PROMPTS
        or not all(isinstance(p, str) and p.strip() for p in prompts)
    ):
        message = f'send JSON {{"prompts": [...]}}: 1 to {MAX_PROMPTS} non-empty strings'
        return JsonResponse({"error": message}, status=400)
    requests = [(custom_id(i), [ModelRequest.user_text_prompt(p)]) for i, p in enumerate(prompts)]
    try:
        # submit_wait=0: store the job and queue it, without waiting for the provider.
        batch = batch_create_sync(
            settings.BATCHLINE_EXAMPLE_MODEL,
            requests,
            callback="answers.save_results",
            chunk_size=CHUNK_SIZE,
            submit_wait=0,
        )
    except BatchInputError as error:
        return JsonResponse({"error": str(error)}, status=400)
    status_url = reverse("job-status", args=[batch.id])
    return JsonResponse({"job_id": batch.id, "status": batch.status.value, "status_url": status_url}, status=202)


@require_GET
def job_status(request: HttpRequest, job_id: str) -> JsonResponse:
    try:
        batch = batch_status_sync(job_id)
    except JobNotFound:
        return JsonResponse({"error": "no such job"}, status=404)
    answers = Answer.objects.filter(job_id=job_id)
    return JsonResponse(
        {
            "job_id": job_id,
            "status": batch.status.value,
            "total": batch.request_count,
            "succeeded": batch.completed_count,
            "failed": batch.failed_count,
            "saved": len(answers),
            "answers": [{"custom_id": a.custom_id, "text": a.text, "error": a.error} for a in answers],
        }
    )
