"""The attribute names batchline's spans carry: the OpenTelemetry GenAI semantic conventions where they apply, and
batchline's own ids and counts."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..providers import split_model

if TYPE_CHECKING:
    from ..records import JobRecord

OPERATION = "gen_ai.operation.name"
SYSTEM = "gen_ai.system"
PROVIDER = "gen_ai.provider.name"
MODEL = "gen_ai.request.model"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
COST = "operation.cost"
"""pydantic-ai's name for a response's cost in USD on its spans."""

JOB_ID = "batchline.job_id"
PART = "batchline.part"
RUN = "batchline.run"
STEP = "batchline.step"
REQUESTS = "batchline.requests"
PARTS = "batchline.parts"
STATUS = "batchline.status"
SUCCEEDED = "batchline.succeeded"
FAILED = "batchline.failed"
ANOMALIES = "batchline.anomalies"
RESULTS = "batchline.results_stored"
PART_STATE = "batchline.part.state"
PROVIDER_STATE = "batchline.provider_state"

_SEMCONV_PROVIDER = {"gemini": "gcp.gemini"}
"""The semantic conventions' `gen_ai.provider.name` where it differs from batchline's prefix."""


def model_attributes(model: str) -> dict[str, str]:
    """`gen_ai.*` attributes of a batchline model string (`openai:gpt-4o-mini`)."""
    try:
        prefix, name = split_model(model)
    except ValueError:
        return {}
    return {OPERATION: "chat", SYSTEM: prefix, PROVIDER: _SEMCONV_PROVIDER.get(prefix, prefix), MODEL: name}


def job_attributes(job_id: str, job: JobRecord | None) -> dict[str, str | int]:
    attributes: dict[str, str | int] = {JOB_ID: job_id}
    if job is not None:
        attributes.update(model_attributes(job.model))
        attributes[REQUESTS] = job.total
        attributes[PARTS] = job.parts
    return attributes
