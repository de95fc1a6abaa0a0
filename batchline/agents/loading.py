"""The agent and deps factory a job names, imported on a worker only when the workers allow them.

A job is data in Redis: were a worker to import whatever module a job names, anyone able to write a job could run
code on the workers. So, like callback tasks, agents are named in the workers' `allowed_agents`.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from pydantic_ai import Agent
from pydantic_ai.models import Model, infer_model

from ..errors import BatchInputError, CallbackNotAllowed


def check_allowed(path: str, allowed: frozenset[str]) -> None:
    module, _, _ = path.partition(":")
    if path not in allowed and module not in allowed:
        raise CallbackNotAllowed(
            f"Agent {path!r} is not in batchline's allowed_agents; add it (or its module {module!r}) to the config."
        )


def _resolve(path: str, what: str) -> Any:
    """The module-level name at `module:name`. One plain name, never a dotted walk or a private name: a job is data
    anyone who can write to Redis could forge, and `myapp.agents:os.system` must not reach `os.system`."""
    module_name, sep, attribute = path.partition(":")
    if not sep or not module_name or not attribute.isidentifier() or attribute.startswith("_"):
        raise BatchInputError(f"{what} must be an import path `module:name` (one public name), not {path!r}.")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise BatchInputError(f"{what} {path!r}: module {module_name!r} cannot be imported ({error}).") from None
    if not hasattr(module, attribute):
        raise BatchInputError(f"{what} {path!r}: {module_name!r} has no attribute {attribute!r}.")
    return getattr(module, attribute)


def load_agent(path: str, allowed: frozenset[str]) -> Agent[Any, Any]:
    check_allowed(path, allowed)
    agent = _resolve(path, "The agent")
    if not isinstance(agent, Agent):
        raise BatchInputError(f"{path!r} is a {type(agent).__name__}, not a pydantic-ai Agent.")
    return agent


def load_deps_factory(path: str, agent_path: str, allowed: frozenset[str]) -> Any:
    """A function defined in the agent's own module (or in one the workers allow): it runs on the workers, with a
    run's custom_id, so a name the module merely imported (`os.system`, `subprocess.run`) is refused."""
    module = path.partition(":")[0]
    if module != agent_path.partition(":")[0]:
        check_allowed(path, allowed)
    factory = _resolve(path, "The deps factory")
    if not callable(factory) or getattr(factory, "__module__", None) != module:
        raise BatchInputError(f"The deps factory {path!r} must be a function defined in {module!r}.")
    return factory


_models: dict[str, Model] = {}


def model_of(agent: Agent[Any, Any]) -> Model | None:
    """The agent's model made once per worker process from its model string, None for a `Model` instance (used as
    is). pydantic-ai would make a provider, and its HTTP client with a new TLS context, for every run; the pool never
    uses that client, so one model serves every run."""
    name = agent.model
    if not isinstance(name, str):
        return None
    if name not in _models:
        _models[name] = infer_model(name)
    return _models[name]


async def make_deps(factory: Any, custom_id: str) -> Any:
    deps = factory(custom_id)
    return await deps if inspect.isawaitable(deps) else deps
