"""Property-based fuzz of the OpenAPI schema (schemathesis, in-process ASGI): no input gives a 5xx."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from services.api.app import create_app
from services.serving.runtime import Runtime, open_runtime
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


# JSON bodies: schemathesis never writes a number JSON cannot hold (its floats are finite), so every body
# field is also sent each of these, alone, in a list and as an object's value (NaN and Infinity are what
# Python's json writes and reads; 1e400 overflows to infinity; a NUL in a string)
ODD_VALUES = ["NaN", "Infinity", "-Infinity", "1e400", "-1e400", '"\\u0000"', '"a\\u0000b"']
BODIES = sorted(
    (path, name)
    for path, operations in SPEC["paths"].items()
    for op in operations.values()
    if "requestBody" in op
    for name in SPEC["components"]["schemas"][
        op["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    ]["properties"]
)


@pytest.fixture(scope="module")
def runtime(built_settings: Settings) -> Iterator[Runtime]:
    """A runtime this module opens and closes (schemathesis starts the app's lifespan itself and keeps it
    for the whole process, so the app must not own it)."""
    rt = open_runtime(built_settings.updated(access_log=False), serving=True)
    try:
        yield rt
    finally:
        rt.close()


@pytest.fixture(scope="module")
def schema(runtime: Runtime) -> schemathesis.schemas.BaseSchema:
    """The app's schema, served in-process; strings may hold NUL characters."""
    app: FastAPI = create_app(runtime.settings, runtime=runtime)
    loaded = schemathesis.openapi.from_asgi("/openapi.json", app)
    loaded.config.generation.update(allow_x00=True)
    return loaded


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


@pytest.mark.parametrize("path, field", BODIES, ids=[f"{p} {f}" for p, f in BODIES])
def test_numbers_json_cannot_hold_and_nul_characters_give_no_server_error(
    runtime: Runtime, path: str, field: str
) -> None:
    with TestClient(create_app(runtime.settings, runtime=runtime)) as client:
        for value in ODD_VALUES:
            for shape in ("{v}", "[{v}]", '{{"1": {v}}}'):
                raw = f'{{"{field}": {shape.format(v=value)}}}'
                response = client.post(path, content=raw, headers={"content-type": "application/json"})
                assert response.status_code < 500, f"{path} {raw}: {response.status_code} {response.text}"
                json.loads(response.text, parse_constant=_not_json)  # the answer is strict JSON


def _not_json(token: str) -> None:
    raise AssertionError(f"the answer holds {token}, which JSON cannot")
