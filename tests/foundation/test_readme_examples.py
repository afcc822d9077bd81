"""The ingestion examples of README.md and docs/usage.md work as written.

Each ``curl`` to /api/v1/usage in them is taken out of the markdown: its body is posted to
the API, and the whole command is run by bash against a live server.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from usage.models import UsageRecord
from usage.services import ingestion_token_create

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
DOCS = ["README.md", "docs/usage.md"]
LOCAL = "http://127.0.0.1:8000"  # the examples are written for `make run`


def ingest_examples(name: str) -> list[str]:
    """The bash blocks of ``name`` that curl the ingestion API."""
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / name).read_text(), flags=re.S)
    return [block for block in blocks if "curl" in block and "/api/v1/usage" in block]


def body_of(block: str) -> str:
    match = re.search(r"-d '(.*?)'\n", block, flags=re.S)
    assert match, f"no -d '<json>' body in:\n{block}"
    return match.group(1)


@pytest.fixture
def token(project, owner) -> str:
    return ingestion_token_create(project=project, name="docs", actor=owner)[1]


@pytest.mark.parametrize("name", DOCS)
def test_the_ingestion_example_is_a_body_the_api_accepts(client, name, token, project):
    examples = ingest_examples(name)
    assert examples, f"{name} has no curl example of POST /api/v1/usage"
    for block in examples:
        assert (
            f"{LOCAL}/api/v1/usage" in block
            and "Authorization: Bearer $CONSOLE_INGEST_TOKEN" in block
        )
        body = json.loads(body_of(block))  # no placeholders: real JSON
        response = client.post(
            "/api/v1/usage",
            data=json.dumps(body),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {token}",
        )
        assert response.status_code == 200, response.content
        assert response.json()["received"] == 1
    record = UsageRecord.objects.get(project=project)
    assert (record.model, record.input_tokens, record.output_tokens) == ("gpt-5.4-mini", 12, 7)
    assert record.cost > 0


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
@pytest.mark.parametrize("name", DOCS)
def test_the_curl_command_runs_as_written(live_server, name, token, project):
    for block in ingest_examples(name):
        command = block.replace(LOCAL, live_server.url)
        done = subprocess.run(
            ["bash", "-c", command],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "CONSOLE_INGEST_TOKEN": token},
        )
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == {"received": 1, "created": 1, "duplicates": 0}
    assert UsageRecord.objects.filter(project=project).count() == 1
