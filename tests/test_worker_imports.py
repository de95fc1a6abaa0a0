"""A worker moves bytes: it loads Celery, Redis and HTTP, not pydantic-ai's models or the providers' SDKs.

Encoding and decoding happen where the API is called; a prefork pool process that loaded pydantic-ai and the openai
SDK for nothing would carry about 40 MB more, and pay their import on its first task.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("pydantic_ai", "openai", "anthropic", "google.genai")


@pytest.mark.parametrize("adapter", ["openai", "anthropic", "gemini", "openai_compat"])
def test_the_worker_side_of_an_adapter_imports_no_model_library(adapter: str) -> None:
    code = (
        f"import sys, batchline.worker, batchline.tasks, batchline.providers.{adapter}\n"
        f"print(sorted({{m.partition('.')[0] if m.startswith(('pydantic_ai', 'openai', 'anthropic')) else m "
        f"for m in sys.modules if m.startswith({HEAVY!r})}}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_the_api_still_loads_on_first_use() -> None:
    code = "import batchline, sys; assert 'batchline.api' not in sys.modules; print(batchline.batch_create_sync)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.startswith("<function batch_create_sync")
