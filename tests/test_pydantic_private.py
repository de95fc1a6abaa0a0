"""When pydantic-ai moves a private name batchline's fast OpenAI decoder uses, batchline warns once and decodes
through pydantic-ai's public `batch_decode`: the same answers, slower, and never an ImportError.

A name is made missing as a release that moved it would: its module is gone from the import system, or the name from
its module. Every body of test_fastdecode's emulator answers and variants is then decoded by batchline and by
pydantic-ai's public decoder and compared as there; encoding (which uses no private name) must still give the bytes
pydantic-ai's public `batch_encode` gives.
"""

from __future__ import annotations

import asyncio
import sys
import warnings
from collections.abc import Iterator

import orjson
import pytest
from pydantic_ai.messages import ModelRequest
from pydantic_ai.models.batch import BatchRequest
from pydantic_ai.models.openai import _response_fields

from batchline import pydantic_private
from batchline.providers import get_provider
from batchline.providers.openai.codec import codec_model
from batchline.providers.openai.fastdecode import fast_decode

from .test_fastdecode import MODEL, _ours, _reference, _request, _same, _stored, _variants, emulator_answers

MISSING = {
    "module": lambda mp: mp.setitem(sys.modules, "pydantic_ai.models.openai._citations", None),
    "name": lambda mp: mp.delattr(_response_fields, "response_tool_call_id"),
}


@pytest.fixture(params=sorted(MISSING))
def gone(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    pydantic_private.reset()
    MISSING[request.param](monkeypatch)
    yield request.param
    pydantic_private.reset()  # the fixture's undo brings the name back: let the next decode find it again


def test_a_missing_private_name_warns_once_and_decodes_as_pydantic_ai(gone: str) -> None:
    cases = emulator_answers() + _variants()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for name, body, params in cases:
            result = _stored(name, "succeeded", orjson.dumps(body))
            request = _request(name, params)
            assert fast_decode(codec_model(MODEL), result.body, request) is None
            _same(_ours(result, request), _reference(result, request))
    said = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(said) == 1, said
    assert ("_citations" if gone == "module" else "response_tool_call_id") in said[0]
    assert "slower" in said[0]
    assert pydantic_private.fast_path_missing() is not None


def test_encoding_gives_pydantic_ais_public_bytes_with_a_name_missing(gone: str) -> None:
    requests = [
        BatchRequest(custom_id=f"r{i}", messages=[ModelRequest.user_text_prompt(f"Question {i}?")]) for i in range(4)
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # encoding reads no private name: no warning either
        encoded = get_provider(f"openai:{MODEL}").encode_many(requests)
    public = [asyncio.run(codec_model(MODEL).batch_encode(request)) for request in requests]
    assert [e.body for e in encoded] == [p.body.encode() for p in public]
    assert [e.custom_id for e in encoded] == [p.custom_id for p in public]


def test_with_every_name_present_the_fast_path_is_on() -> None:
    pydantic_private.reset()
    name, body, params = emulator_answers()[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert fast_decode(codec_model(MODEL), orjson.dumps(body), _request(name, params)) is not None
    assert pydantic_private.fast_path_missing() is None


# -- batchline.direct's helpers -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("arguments", "accepted"),
    [
        ({"max_requests": 10, "max_resubmissions": 2, "poll_interval": 30, "max_poll_interval": 600}, True),
        ({"max_requests": 0, "max_resubmissions": 2, "poll_interval": 30, "max_poll_interval": 600}, False),
        ({"max_requests": None, "max_resubmissions": -1, "poll_interval": 30, "max_poll_interval": 600}, False),
        ({"max_requests": None, "max_resubmissions": 2, "poll_interval": 60, "max_poll_interval": 30}, False),
    ],
)
def test_without_pydantic_ais_batch_checks_the_fallback_checks_the_same(
    arguments: dict[str, object], accepted: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import timedelta

    from pydantic_ai.exceptions import UserError

    model = codec_model(MODEL.partition(":")[2])
    kwargs = {k: timedelta(seconds=v) if "interval" in k and isinstance(v, int) else v for k, v in arguments.items()}

    def outcome() -> object:
        try:
            return pydantic_private.check_batch_settings(model, **kwargs)  # type: ignore[arg-type]
        except UserError:
            return UserError

    pydantic_private._direct_helper.cache_clear()
    with_helper = outcome()
    monkeypatch.setitem(sys.modules, "pydantic_ai.models._batch_settings", None)
    pydantic_private._direct_helper.cache_clear()
    with pytest.warns(UserWarning, match="check_batch_settings; a plain fallback runs"):
        fallback = outcome()
    pydantic_private._direct_helper.cache_clear()
    assert fallback == with_helper
    assert (with_helper is not UserError) is accepted
