"""Property: the ingestion parser, fed any JSON, either builds a record that fits its
columns and is plausible, or raises FieldError naming a field. Nothing else, ever: any
other exception would be a 500 for the client."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import hypothesis
import pytest
from hypothesis import HealthCheck
from hypothesis import strategies as st

from usage.api import FUTURE_TOLERANCE, _draft, _split_records
from usage.models import UsageRecord
from usage.parsing import _FORBIDDEN, EARLIEST, FieldError, normalize_usage, parse_response
from usage.services import MAX_LATENCY_MS, MAX_RETRIES

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
TOP_KEYS = [
    "id",
    "object",
    "model",
    "status",
    "service_tier",
    "created_at",
    "created",
    "usage",
    "type",
    "response",
    "response_id",
    "server_request_id",
    "client_request_id",
    "latency_ms",
    "error_type",
    "ratelimit_headers",
    "retries",
    "occurred_at",
    "project",
    "records",
]
USAGE_KEYS = [
    "input_tokens",
    "output_tokens",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "input_tokens_details",
    "output_tokens_details",
    "prompt_tokens_details",
    "completion_tokens_details",
    "cached_tokens",
    "reasoning_tokens",
]
STRING_COLUMNS = [
    "model",
    "response_id",
    "server_request_id",
    "client_request_id",
    "service_tier",
    "status",
    "error_type",
]


def _iso(draw_dt: datetime, minutes: int) -> str:
    return draw_dt.replace(tzinfo=timezone(timedelta(minutes=minutes))).isoformat()


times = st.one_of(
    st.builds(
        _iso,
        st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)),
        st.integers(-1439, 1439),
    ),
    st.floats(min_value=-1e13, max_value=1e13, allow_nan=False),
    st.sampled_from(
        [
            "0001-01-01T00:00:00+05:00",
            "9999-12-31T23:59:59-05:00",
            "2026-07-01T12:00:00Z",
            "2026-07-01T12:00:00",
            "not a time",
            "",
        ]
    ),
    st.just(NOW.timestamp()),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    st.text(alphabet=st.characters(max_codepoint=0x9F), max_size=5),  # control characters
    st.sampled_from(["gpt-5.5", "completed", "flex", "resp_1", "x" * 201, "a\x00b", "\u202e"]),
    st.integers(min_value=0, max_value=5000),
    times,
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
counts = st.one_of(st.integers(min_value=-5, max_value=10**13), json_values)
usage = st.dictionaries(
    st.sampled_from(USAGE_KEYS),
    st.one_of(counts, st.dictionaries(st.sampled_from(USAGE_KEYS), counts, max_size=2)),
    max_size=6,
)
headers = st.dictionaries(
    st.one_of(
        st.sampled_from(["x-ratelimit-limit-requests", "Date", "", "x-ratelimit-\x00"]),
        st.text(max_size=120),
    ),
    json_values,
    max_size=4,
)


def _record(inner):
    special = {
        "usage": usage,
        "ratelimit_headers": headers,
        "response": inner,
        "created_at": times,
        "occurred_at": times,
    }
    return st.dictionaries(st.sampled_from(TOP_KEYS), json_values, max_size=10).flatmap(
        lambda base: st.fixed_dictionaries(
            {
                k: st.one_of(special[k], json_values) if k in special else st.just(v)
                for k, v in base.items()
            }
        )
    )


responses = _record(st.dictionaries(st.sampled_from(TOP_KEYS), json_values, max_size=8))
records = st.one_of(_record(responses), json_values)
bodies = st.one_of(
    records,
    st.lists(records, max_size=3),
    st.fixed_dictionaries({"records": st.one_of(st.lists(records, max_size=3), json_values)}),
)

SETTINGS = hypothesis.settings(
    max_examples=400,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)


def _check_plausible(row: dict) -> None:
    for name in STRING_COLUMNS:
        value = row[name]
        if value is None:
            continue
        assert isinstance(value, str) and len(value) <= UsageRecord._meta.get_field(name).max_length
        assert not _FORBIDDEN.search(value)
    assert row["model"] and row["response_id"]
    for key, value in row["ratelimit_headers"].items():
        assert key.startswith("x-ratelimit-") and len(key) <= 100 and isinstance(value, str)
        assert len(value) <= 200 and not _FORBIDDEN.search(key + value)
    assert row["total_tokens"] == row["input_tokens"] + row["output_tokens"]
    assert row["cached_input_tokens"] <= row["input_tokens"]
    assert row["reasoning_tokens"] <= row["output_tokens"]
    assert row["latency_ms"] is None or (
        type(row["latency_ms"]) is int and 0 <= row["latency_ms"] <= MAX_LATENCY_MS
    )
    assert type(row["retries"]) is int and 0 <= row["retries"] <= MAX_RETRIES
    assert EARLIEST <= row["occurred_at"] <= NOW + FUTURE_TOLERANCE
    assert row["occurred_at"].tzinfo is not None


good = st.fixed_dictionaries(
    {
        "id": st.text(alphabet="abc_123", min_size=1, max_size=200),
        "model": st.sampled_from(["gpt-5.5", "gpt-4.1"]),
        "created_at": st.floats(min_value=EARLIEST.timestamp(), max_value=NOW.timestamp()),
        "usage": st.fixed_dictionaries(
            {"input_tokens": st.integers(0, 10**6), "output_tokens": st.integers(0, 10**6)}
        ),
    },
    optional={
        "latency_ms": st.integers(0, MAX_LATENCY_MS),
        "retries": st.integers(0, MAX_RETRIES),
        "client_request_id": st.text(max_size=200).filter(lambda s: not _FORBIDDEN.search(s)),
    },
)


def test_any_json_body_gives_a_plausible_record_or_a_field_error(project):
    outcomes = {"record": 0, "error": 0}

    @SETTINGS
    @hypothesis.given(body=st.one_of(bodies, good, st.lists(good, min_size=1, max_size=3)))
    def run(body) -> None:
        try:
            items, _ = _split_records(body)
            for raw in items:
                _check_plausible(_draft(project, raw, now=NOW, cutoff=None).row)
                outcomes["record"] += 1
        except FieldError as exc:
            assert isinstance(exc.field, str) and exc.message
            outcomes["error"] += 1

    run()
    # Both paths were reached, so the property is not vacuous.
    assert outcomes["error"] > 0 and outcomes["record"] > 0, outcomes


@SETTINGS
@hypothesis.given(value=st.one_of(json_values, usage, responses))
def test_the_usage_and_response_parsers_raise_only_field_errors(value):
    for parse in (normalize_usage, parse_response):
        try:
            parse(value)
        except FieldError as exc:
            assert exc.message
