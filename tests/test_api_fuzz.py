"""Property-based fuzz of the OpenAPI schema (schemathesis, in-process ASGI): no input gives a 5xx."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from services.api.app import create_app
from services.serving.runtime import open_runtime
from services.settings import Settings

EXAMPLES = 20  # per operation and mode: the 14 operations take well under a minute
# no 5xx, documented status codes and bodies; not "schema-valid data is accepted": limits and genres come
# from the settings and the catalogue at run time (422 with the limit stated), not from the static schema
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# every documented operation, and whether it takes any input (building the app opens nothing: its stores
# open in the lifespan)
SPEC = create_app(Settings(access_log=False)).openapi()
OPERATIONS = sorted(
    (method.upper(), path, bool(op.get("parameters") or op.get("requestBody")))
    for path, operations in SPEC["paths"].items()
    for method, op in operations.items()
)


@pytest.fixture(scope="module")
def schema(built_settings: Settings) -> Iterator[schemathesis.schemas.BaseSchema]:
    """The app's schema, served in-process over a runtime this module opens and closes (schemathesis
    starts the app's lifespan itself and keeps it for the whole process, so the app must not own it)."""
    quiet = built_settings.updated(access_log=False)
    runtime = open_runtime(quiet, serving=True)
    try:
        app: FastAPI = create_app(quiet, runtime=runtime)
        yield schemathesis.openapi.from_asgi("/openapi.json", app)
    finally:
        runtime.close()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
@pytest.mark.parametrize("method, path, takes_input", OPERATIONS, ids=[f"{m} {p}" for m, p, _ in OPERATIONS])
def test_no_input_gives_a_server_error(
    schema: schemathesis.schemas.BaseSchema, method: str, path: str, takes_input: bool, mode: GenerationMode
) -> None:
    if mode is GenerationMode.NEGATIVE and not takes_input:
        pytest.skip("no input to make invalid")
    operation = schema[path][method]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
    )
    def fuzz(case: schemathesis.Case) -> None:
        response = case.call()
        assert response.status_code < 500, f"{method} {case.formatted_path}: {response.status_code} {response.text}"
        case.validate_response(response, checks=CHECKS)

    fuzz()
