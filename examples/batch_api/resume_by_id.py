"""Submit now, collect later: keep only the batch id (in a file, a database row...) and come back to it.

`batch_status`, `batch_wait` and `batch_results` take the saved id alone. With a broker configured
(BATCHLINE_BROKER_URL) the second half may run in another process, days later; the embedded default keeps jobs in
this process only, so here both halves run in one.
"""

import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path

from pydantic_ai import ModelRequest

from batchline import batch_create, batch_results, batch_wait

MODEL = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("BATCHLINE_EXAMPLE_MODEL", "test")


async def submit(saved: Path) -> None:
    requests = [
        ("q1", [ModelRequest.user_text_prompt("Translate 'hello' into French.")]),
        ("q2", [ModelRequest.user_text_prompt("Translate 'thank you' into French.")]),
    ]
    batch = await batch_create(MODEL, requests, submit_wait=0)  # return as soon as the job is stored
    saved.write_text(json.dumps({"batch_id": batch.id}))
    print(f"Saved the id of a batch of {batch.request_count} requests")


async def collect(saved: Path) -> None:
    batch_id = json.loads(saved.read_text())["batch_id"]
    batch = await batch_wait(batch_id)
    print(f"Status: {batch.status.name}")
    for result in await batch_results(batch_id):
        if result.is_successful:
            print(f"{result.custom_id}: {result.response.parts[0].content}")


async def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        saved = Path(folder) / "batch.json"
        await submit(saved)
        await collect(saved)


if __name__ == "__main__":
    asyncio.run(main())
