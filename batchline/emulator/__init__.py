"""A provider emulator: the OpenAI, Anthropic and Gemini batch APIs on one local port, for tests and demos.

    with running(EmulatorConfig()) as emulator:
        client = OpenAI(base_url=emulator.openai_base_url, api_key="test")

`batchline emulator --port 8765` serves it from the command line; `batchline.emulator.pytest_plugin` gives tests
an `emulator` fixture.
"""

from .app import build_app
from .config import BatchFault, EmulatorConfig, Faults, HttpFault, Limits, RequestFault
from .server import Emulator, add_arguments, config_from_args, run_from_args, running, serve

__all__ = [
    "BatchFault",
    "Emulator",
    "EmulatorConfig",
    "Faults",
    "HttpFault",
    "Limits",
    "RequestFault",
    "add_arguments",
    "build_app",
    "config_from_args",
    "run_from_args",
    "running",
    "serve",
]
