"""The JSON API against its own OpenAPI document: schemathesis generates requests from the
document (valid and invalid parameters) and checks every answer: documented status, content
type and schema, never a server error.  Runs on both backends."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.web.server import Running

pytestmark = pytest.mark.slow


def test_api_answers_as_documented(site: Running) -> None:
    schema = schemathesis.openapi.from_url(site.base + "/api/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) >= 12
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
        def check(case: schemathesis.Case[Any]) -> None:
            case.call_and_validate()

        check()
