"""The simulator's Chat Completions and Embeddings endpoints, which the reporter tests rely on.

Through the real SDK, as an application's instrumented client calls them.
"""

from __future__ import annotations

import base64
import json
import struct
import urllib.request

import openai
import pytest

from platformadmin.openai.simulator import simulated_reply, simulated_usage_counts
from tests.factories import fake_secret

MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "How do budgets work?"},
]


@pytest.fixture
def client(openai_simulator):
    return openai.OpenAI(api_key=fake_secret(), base_url=openai_simulator.base_url, max_retries=0)


def test_a_chat_completion_has_the_simulator_words_and_counts(client, openai_simulator):
    r = client.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES)
    words = simulated_reply(
        model="gpt-4.1-mini", instructions="Be brief.", text="How do budgets work?"
    )
    inp, cached, _ = simulated_usage_counts(
        instructions="Be brief.", text="How do budgets work?", effort=None
    )
    assert r.object == "chat.completion" and r.id.startswith("chatcmpl-")
    assert r.choices[0].message.content == " ".join(words) and r.choices[0].finish_reason == "stop"
    assert (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == (
        inp,
        len(words),
        inp + len(words),
    )
    assert r.usage.prompt_tokens_details.cached_tokens == cached
    assert r._request_id == openai_simulator.log[-1]["request_id"]
    assert openai_simulator.log[-1]["path"] == "/v1/chat/completions"


def test_a_streamed_chat_completion_carries_usage_last_only_when_asked(client):
    chunks = list(
        client.chat.completions.create(
            model="gpt-4.1-mini",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    plain = client.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES)
    assert all(c.usage is None for c in chunks[:-1])
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == plain.usage.total_tokens
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert len({c.id for c in chunks}) == 1
    unasked = list(
        client.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES, stream=True)
    )
    assert all(c.usage is None for c in unasked) and unasked[-1].choices[0].finish_reason == "stop"


def test_max_completion_tokens_truncates_with_finish_reason_length(client):
    r = client.chat.completions.create(
        model="gpt-4.1-mini", messages=MESSAGES, max_completion_tokens=3
    )
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 3


def test_embeddings_are_deterministic_unit_vectors_as_floats_or_base64(client):
    as_b64 = client.embeddings.create(
        model="text-embedding-3-small", input=["abc", "a longer input"]
    )
    as_float = client.embeddings.create(
        model="text-embedding-3-small", input=["abc", "a longer input"], encoding_format="float"
    )
    assert [d.index for d in as_float.data] == [0, 1]
    for a, b in zip(as_b64.data, as_float.data, strict=True):
        assert a.embedding == pytest.approx(b.embedding, abs=1e-6)
        assert sum(v * v for v in b.embedding) == pytest.approx(1.0)
    assert as_float.data[0].embedding != as_float.data[1].embedding
    assert (as_float.usage.prompt_tokens, as_float.usage.total_tokens) == (1 + 4, 5)
    assert as_float.model == "text-embedding-3-small"


def test_embeddings_encode_base64_as_little_endian_float32(openai_simulator):
    body = json.dumps(
        {
            "model": "text-embedding-3-small",
            "input": "abc",
            "encoding_format": "base64",
            "dimensions": 4,
        }
    ).encode()
    req = urllib.request.Request(
        f"{openai_simulator.base_url}/embeddings",
        data=body,
        method="POST",
        headers={"Authorization": f"Bearer {fake_secret()}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as reply:
        raw = base64.b64decode(json.loads(reply.read())["data"][0]["embedding"])
    vector = struct.unpack("<4f", raw)
    assert sum(v * v for v in vector) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("path", ["chat", "embeddings"])
@pytest.mark.parametrize(
    ("token", "error"),
    [
        ("fault-401", openai.AuthenticationError),
        ("fault-403", openai.PermissionDeniedError),
        ("fault-404", openai.NotFoundError),
        ("fault-429", openai.RateLimitError),
        ("fault-500", openai.InternalServerError),
        ("fault-cut", openai.APIConnectionError),
    ],
)
def test_the_fault_tokens_apply_to_chat_and_embeddings(client, path, token, error):
    model = {"chat": "gpt-4.1-mini", "embeddings": "text-embedding-3-small"}[path] + f"-{token}"
    with pytest.raises(error) as info:
        if path == "chat":
            client.chat.completions.create(model=model, messages=MESSAGES)
        else:
            client.embeddings.create(model=model, input="abc")
    if not isinstance(info.value, openai.APIConnectionError):
        assert info.value.request_id.startswith("req_")
        assert (
            info.value.code
            == {
                "fault-401": "invalid_api_key",
                "fault-403": "insufficient_permissions",
                "fault-404": "model_not_found",
                "fault-429": "rate_limit_exceeded",
                "fault-500": "server_error",
            }[token]
        )


def test_a_cut_chat_stream_stops_mid_way(client):
    seen = []
    with pytest.raises(openai.APIConnectionError):
        for chunk in client.chat.completions.create(
            model="gpt-4.1-mini-fault-cut",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        ):
            seen.append(chunk)
    assert seen and all(c.usage is None for c in seen)


def test_bad_chat_and_embedding_input_is_a_400_naming_the_parameter(client):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="gpt-4.1-mini", messages=[])
    assert info.value.param == "messages"
    with pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(model="text-embedding-3-small", input=[])
    assert info.value.param == "input"
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="gpt-4.1-mini", messages=MESSAGES, reasoning_effort="low"
        )
    assert info.value.param == "reasoning_effort"
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="no-such-model", input="abc")
