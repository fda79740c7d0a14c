"""Schemathesis against the live OpenAPI document: generated requests never cause a 500.

Every operation is called with a key of a role it admits, so the generated input reaches the
handlers rather than stopping at the key check, and again with no key and with an unknown one.
Beside what schemathesis draws from the schema, a share of the cases carries what a hostile
client sends and a schema never describes: images too thin to analyse, deeply nested JSON (as a
.cfsig header or a hash list), and huge field values. Bounded: a fixed number of examples per
operation, derandomised, so the run takes the same time on every machine.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from service_support import NESTED_JSON, cfsig_with_header, start_service

from counterfake.service.app import ROUTERS

EXAMPLES_PER_OPERATION = 25
EXAMPLES_WITHOUT_A_KEY = 5


def png(width: int, height: int) -> bytes:
    ok, data = cv2.imencode(".png", np.full((height, width, 3), 128, np.uint8))
    assert ok
    return data.tobytes()


HOSTILE_FILES = [
    png(700, 1),
    png(1, 1000),
    png(5000, 8),
    NESTED_JSON,
    cfsig_with_header(NESTED_JSON),
    cfsig_with_header(b'{"format": "counterfake-signatures", "signatures": ' + b"[" * 5000),
    b"\xff" * 1_000_000,
]
MAX_QUERY_VALUE = 2000  # uvicorn's HTTP parser refuses a request line past 16 kB, before the app
HOSTILE_TEXT = ["x" * 50_000, "[" * 20_000, "\x00\x1b[2J\u202e", "../" * 1000, "%2F" * 500]


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    running = start_service(
        str(tmp_path_factory.mktemp("service") / "registry.db"),
        tmp_path_factory.mktemp("logs"),
        "--rate-limit",
        "1000",
        "--burst",
        "1000",
        "--max-body-mb",
        "2",
    )
    yield running
    running.stop()


@pytest.fixture(scope="module")
def api_schema(live):
    return schemathesis.openapi.from_url(f"{live.url}/openapi.json")


OPERATIONS = [("GET", "/health"), ("GET", "/metrics")] + [
    (method, route.path)
    for router in ROUTERS
    for route in router.routes
    for method in route.methods
]


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_generated_requests_never_cause_a_server_error(api_schema, live, method, path):
    operation = api_schema[path][method]
    roles = operation.definition.raw.get("x-roles", ["public"])
    headers = {} if roles == ["public"] else {"Authorization": f"Bearer {key(live, roles[0])}"}
    fuzz(operation, live.url, headers, EXAMPLES_PER_OPERATION)


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
@pytest.mark.parametrize("credentials", ["none", "unknown"])
def test_generated_requests_without_a_valid_key_never_cause_a_server_error(
    api_schema, live, method, path, credentials
):
    headers = {"Authorization": "Bearer cfk_unknown"} if credentials == "unknown" else {}
    fuzz(api_schema[path][method], live.url, headers, EXAMPLES_WITHOUT_A_KEY)


def poison(case, choice: int) -> None:
    """Put hostile values where the schema has files and text fields; for the second half of
    the choices, in its query parameters too (which then mostly fail validation, 422)."""
    file = HOSTILE_FILES[choice % len(HOSTILE_FILES)]
    text = HOSTILE_TEXT[choice % len(HOSTILE_TEXT)]
    if isinstance(case.body, dict):
        for name in list(case.body):
            if name == "files":
                case.body[name] = [file, HOSTILE_FILES[0]]
            elif name == "file":
                case.body[name] = file
            else:
                case.body[name] = text
    if choice >= len(HOSTILE_FILES):
        for name in list(case.query or {}):
            case.query[name] = text[:MAX_QUERY_VALUE]


def fuzz(operation, base_url: str, headers: dict[str, str], examples: int) -> None:
    @given(
        case=operation.as_strategy(),
        hostile=st.one_of(st.none(), st.integers(0, 2 * len(HOSTILE_FILES) - 1)),
    )
    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def no_server_error(case, hostile):
        if hostile is not None:
            poison(case, hostile)
        response = case.call(base_url=base_url, headers=headers, timeout=60)
        assert response.status_code < 500, (
            f"{case.method} {case.formatted_path}: {response.status_code} {response.text}"
        )

    no_server_error()


def key(live, role: str) -> str:
    with live.as_(role, f"{role}-fuzz") as client:
        return client.headers["Authorization"].removeprefix("Bearer ")
