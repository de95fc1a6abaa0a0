"""A run's usage across its rounds, kept as pydantic-ai's `RunUsage` JSON."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from pydantic import TypeAdapter
from pydantic_ai.usage import RunUsage

USAGE = TypeAdapter(RunUsage)


def load_usage(raw: bytes) -> RunUsage:
    return USAGE.validate_json(raw) if raw else RunUsage()


def resume_from(usage: RunUsage, waiting: bool) -> RunUsage:
    """The usage a resumed round starts from. pydantic-ai counts a suspended request once when it is made and once
    more when the resumed run reads its result: one request is taken off so the total is the run's real count, and
    `request_limit` trips where it would in one process."""
    return dataclasses.replace(usage, requests=usage.requests - 1) if waiting and usage.requests else usage


@dataclass(frozen=True)
class Added:
    """What a round added to the job's counts."""

    tool_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def tokens(self) -> tuple[int, int]:
        return self.input_tokens, self.output_tokens

    @classmethod
    def between(cls, before: RunUsage, after: RunUsage) -> Added:
        return cls(
            after.tool_calls - before.tool_calls,
            after.input_tokens - before.input_tokens,
            after.output_tokens - before.output_tokens,
        )
