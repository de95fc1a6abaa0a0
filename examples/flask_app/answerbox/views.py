"""POST prompts to enqueue a batch job (the answer comes back at once), GET its progress and saved answers."""

import re
from typing import Any

from batchline import BatchInputError, JobNotFound, agents, batch_create_sync, batch_status_sync
from flask import Blueprint, current_app, request, url_for
from pydantic_ai import ModelRequest

from . import store

bp = Blueprint("jobs", __name__)

MAX_PROMPTS = 10_000
CHUNK_SIZE = 100
"""Results per call of the callback task."""
_JOB_ID = re.compile(r"batch_[0-9a-f]{32}")
_AGENT_JOB_ID = re.compile(r"agent_[0-9a-f]{32}")


def custom_id(index: int) -> str:
    return f"prompt-{index:05d}"  # sorts in prompt order


@bp.post("/jobs")
def create_job() -> tuple[dict[str, Any], int]:
    body = request.get_json(silent=True)
    prompts = body.get("prompts") if isinstance(body, dict) else None
    if (
        not isinstance(prompts, list)
        or not 0 < len(prompts) <= MAX_PROMPTS
        or not all(isinstance(p, str) and p.strip() for p in prompts)
    ):
        return {"error": f'send JSON {{"prompts": [...]}}: 1 to {MAX_PROMPTS} non-empty strings'}, 400
    requests = [(custom_id(i), [ModelRequest.user_text_prompt(p)]) for i, p in enumerate(prompts)]
    try:
        # submit_wait=0: store the job and queue it, without waiting for the provider.
        batch = batch_create_sync(
            current_app.config["BATCHLINE_MODEL"],
            requests,
            callback="answerbox.save_results",
            chunk_size=CHUNK_SIZE,
            submit_wait=0,
        )
    except BatchInputError as error:
        return {"error": str(error)}, 400
    status_url = url_for("jobs.job_status", job_id=batch.id)
    return {"job_id": batch.id, "status": batch.status.value, "status_url": status_url}, 202


@bp.get("/jobs/<job_id>")
def job_status(job_id: str) -> tuple[dict[str, Any], int]:
    if not _JOB_ID.fullmatch(job_id):
        return {"error": "no such job"}, 404
    try:
        batch = batch_status_sync(job_id)
    except JobNotFound:
        return {"error": "no such job"}, 404
    answers = store.answers(current_app.config["RESULTS_DB"], job_id)
    return {
        "job_id": job_id,
        "status": batch.status.value,
        "total": batch.request_count,
        "succeeded": batch.completed_count,
        "failed": batch.failed_count,
        "saved": len(answers),
        "answers": answers,
    }, 200


@bp.post("/agent-runs")
def create_agent_runs() -> tuple[dict[str, Any], int]:
    """Run the support agent over each question on the workers; each round of model requests is one batch."""
    body = request.get_json(silent=True)
    questions = body.get("questions") if isinstance(body, dict) else None
    if (
        not isinstance(questions, list)
        or not 0 < len(questions) <= MAX_PROMPTS
        or not all(isinstance(q, str) and q.strip() for q in questions)
    ):
        return {"error": f'send JSON {{"questions": [...]}}: 1 to {MAX_PROMPTS} non-empty strings'}, 400
    try:
        batch = agents.run_batch_sync(
            "answerbox.agents:support",
            [(custom_id(i), q) for i, q in enumerate(questions)],
            deps="answerbox.agents:customer_of",
            callback="answerbox.save_agent_outputs",
            max_wait=current_app.config.get("AGENT_MAX_WAIT", 60),
        )
    except BatchInputError as error:
        return {"error": str(error)}, 400
    return {"job_id": batch.id, "status_url": url_for("jobs.agent_runs_status", job_id=batch.id)}, 202


@bp.get("/agent-runs/<job_id>")
def agent_runs_status(job_id: str) -> tuple[dict[str, Any], int]:
    if not _AGENT_JOB_ID.fullmatch(job_id):
        return {"error": "no such job"}, 404
    try:
        batch = agents.status_sync(job_id)
    except JobNotFound:
        return {"error": "no such job"}, 404
    progress = batch.agent
    assert progress is not None
    answers = store.answers(current_app.config["RESULTS_DB"], job_id)
    return {
        "job_id": job_id,
        "status": batch.status.value,
        "total": batch.request_count,
        "waiting": progress.waiting,
        "succeeded": progress.succeeded,
        "failed": progress.failed,
        "tool_calls": progress.tool_calls,
        "answers": answers,
    }, 200
