"""Schemathesis against the live OpenAPI document: generated requests never cause a 500.

Every operation is called with a key of a role it admits, so the generated input reaches the
handlers rather than stopping at the key check. Bounded: a fixed number of examples per
operation, derandomised, so the run takes the same time on every machine.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from service_support import start_service

from counterfake.service.app import ROUTERS

EXAMPLES_PER_OPERATION = 15


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
    fuzz(operation, live.url, headers)


def fuzz(operation, base_url: str, headers: dict[str, str]) -> None:
    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def no_server_error(case):
        response = case.call(base_url=base_url, headers=headers, timeout=60)
        assert response.status_code < 500, (
            f"{case.method} {case.formatted_path}: {response.status_code} {response.text}"
        )

    no_server_error()


def key(live, role: str) -> str:
    with live.as_(role, f"{role}-fuzz") as client:
        return client.headers["Authorization"].removeprefix("Bearer ")
