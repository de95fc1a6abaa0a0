"""Run by tests/emulator/test_together_sdk.py in its own environment with Together's official SDK (`together`, which
cannot be installed beside batchline): a batch's whole round trip made only with the SDK's own calls, pointed at the
emulator by `TOGETHER_BASE_URL` and `TOGETHER_API_KEY`. Prints a JSON summary on its last line."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from together import Together

MODEL = "meta-llama/Llama-3.3-70B-Instruct-Turbo"


def main(workdir: Path, count: int) -> None:
    source = workdir / "batch_input.jsonl"  # the SDK picks the file type from the extension
    rows = [
        {"custom_id": f"r{i}", "body": {"model": MODEL, "messages": [{"role": "user", "content": f"q{i}"}]}}
        for i in range(count)
    ]
    source.write_text("".join(json.dumps(row) + "\n" for row in rows))

    client = Together(max_retries=0)
    uploaded = client.files.upload(file=source, purpose="batch-api")
    created = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", model_id=MODEL)
    assert created.job is not None and created.job.id is not None
    statuses = [created.job.status]
    job = created.job
    deadline = time.monotonic() + 30
    while job.status not in ("COMPLETED", "FAILED", "EXPIRED", "CANCELLED") and time.monotonic() < deadline:
        time.sleep(0.05)
        job = client.batches.retrieve(created.job.id)
        statuses.append(job.status)
    listed = client.batches.list()
    assert job.output_file_id is not None, job
    output = client.files.content(job.output_file_id).read().decode()
    answered = {}
    for line in output.splitlines():
        if line.strip():
            record = json.loads(line)
            answered[record["custom_id"]] = record["response"]["body"]["choices"][0]["message"]["content"]
    info = client.files.retrieve(uploaded.id)
    summary = {
        "file_id": uploaded.id,
        "file_purpose": uploaded.purpose,
        "file_type": uploaded.file_type,
        "file_bytes": uploaded.bytes,
        "retrieved_bytes": info.bytes,
        "batch_id": created.job.id,
        "statuses": statuses,
        "status": job.status,
        "progress": job.progress,
        "model_id": job.x_model_id,
        "input_file_id": job.input_file_id,
        "output_file_id": job.output_file_id,
        "listed_ids": [listed_job.id for listed_job in listed],
        "answered": answered,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
