"""Schemathesis against the served OpenAPI description: every operation, generated input, and
no answer is a 5xx or strays from what the description promises.

The server runs on the test's event loop; schemathesis is synchronous, so it runs in a thread.
"""

from __future__ import annotations

import asyncio
from typing import Any

import hypothesis
import requests
import schemathesis
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.result import Err

from tests.api.conftest import Api, make, number_body

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES_PER_OPERATION = 15  # derandomized: the same inputs every run


def fuzz(base_url: str, secret: str, document: dict[str, Any]) -> list[str]:
    """Each operation's failures, as text (empty when all held)."""
    schema = schemathesis.openapi.from_dict(document)
    headers = {"Authorization": f"Bearer {secret}"}
    failures: list[str] = []
    with requests.Session() as session:
        for result in schema.get_all_operations():
            if isinstance(result, Err):
                failures.append(f"the description does not load: {result.err()}")
                continue
            operation = result.ok()

            @hypothesis.given(case=operation.as_strategy())
            @hypothesis.settings(
                max_examples=EXAMPLES_PER_OPERATION,
                deadline=None,
                database=None,
                derandomize=True,
                suppress_health_check=list(hypothesis.HealthCheck),
                phases=[hypothesis.Phase.generate],
            )
            def run(case: schemathesis.Case[Any]) -> None:
                case.call_and_validate(
                    base_url=base_url, session=session, headers=headers, checks=CHECKS
                )

            try:
                run()
            except Exception as error:  # one operation's failure must not hide the others'
                failures.append(f"{operation.label}: {error}")
    return failures


async def test_the_api_holds_to_its_description(api: Api) -> None:
    number = await make(api.alice, "/phone-numbers", number_body())
    await make(api.alice, "/agents", {"phoneNumber": number["phoneNumber"], "name": "a",
                                      "sttModel": "s", "inferenceModel": "l", "ttsModel": "t",
                                      "ttsVoice": "v", "systemPrompt": ""})  # fmt: skip
    document = (await api.alice.get("/openapi.json")).json()
    failures = await asyncio.to_thread(fuzz, api.base_url, api.alice_key.secret, document)
    assert failures == []
