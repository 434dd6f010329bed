"""schemathesis (4.x engine, every check, every phase) against the served decision app over real
HTTP: the in-process app under uvicorn (its own process on 127.0.0.1) and the Ray Serve app of
`test_serve_app` (its fixture: the canary config, API key required). No check may fail (no 5xx,
every status, content type and body as the OpenAPI spec documents them: no `default_probability:
null`; negative data refused, positive data not refused but as documented; without the key a
401), and the Serve ingress's spec declares the bearer scheme every guarded route requires. The
Serve app also refuses a chunked body over its limit as it arrives (its proxy's and ingress
replicas' peak memory measured).

Examples are bounded (`MAX_EXAMPLES` per operation and phase, a fixed seed). The spec cannot say
that times lie between 2007 and the service's clock, that an application follows its applicant's
sign-up or what an Arrow body holds, so a body valid by the spec may be refused with 422, and a
generated Idempotency-Key may repeat with another body (409): positive data may get 2xx, 409, 413
or 422. Generated date-times are drawn from the bounds' range so that most positive bodies are
decided."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
import psutil
import pytest
import schemathesis
from hypothesis import strategies as st
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import Status, events, from_schema
from schemathesis.specs.openapi.formats import unregister_string_format
from serving_helpers import chunked_json_body, in_process_server, peak_rss_mb, small_registry
from test_serve_app import AUTH, registry, service, world  # noqa: F401 (the Serve app's fixtures)

from tala_ray.data import bounds

MAX_EXAMPLES = 50


@dataclass
class Run:
    """What one schemathesis run saw: answers by (operation, status), failed checks, errors."""

    operations: set[str] = field(default_factory=set)  # every operation of the spec
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    failures: list[tuple[str, str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def statuses_of(self, operation: str) -> set[int]:
        return {status for label, status in self.statuses if label == operation}


def run_schemathesis(base_url: str, headers: dict[str, str] | None = None) -> Run:
    """Every phase and check of schemathesis against the app at `base_url` (its /openapi.json),
    with date-times generated inside the bounds' range."""
    floor, now = bounds.TIME_FLOOR.replace(tzinfo=None), datetime.now(UTC).replace(tzinfo=None)
    schemathesis.openapi.format("date-time", st.datetimes(floor, now).map(lambda t: t.isoformat() + "Z"))
    settings = {
        "base-url": base_url,
        "seed": 17,
        "request-timeout": 60,
        "generation": {"max-examples": MAX_EXAMPLES, "mode": "all"},
        # 404: a valid applicant id the online store does not know; 503: no online store to read (documented)
        "checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "404", "409", "413", "422", "503"]}},
    }
    if headers:
        settings["headers"] = headers
    run = Run()
    try:
        schema = schemathesis.openapi.from_url(
            f"{base_url}/openapi.json", config=SchemathesisConfig.from_dict(settings), headers=headers or {}
        )
        run.operations = {result.ok().label for result in schema.get_all_operations()}
        for event in from_schema(schema).execute():
            if isinstance(event, events.ScenarioFinished):
                for interaction in event.recorder.interactions.values():
                    if interaction.response is not None:
                        run.statuses[(event.label, interaction.response.status_code)] += 1
                for checks in event.recorder.checks.values():
                    for check in checks:
                        if check.status == Status.FAILURE:
                            run.failures.append((event.label, check.name, str(check.failure_info)[:500]))
            elif isinstance(event, events.NonFatalError | events.FatalError):
                run.errors.append(repr(event)[:500])
    finally:
        unregister_string_format("date-time")  # back to schemathesis' own
    return run


@pytest.fixture(scope="module")
def in_process_registry(tmp_path_factory) -> str:
    return small_registry(tmp_path_factory.mktemp("registry"))[0]


def test_the_in_process_app_passes_every_check(in_process_registry, valkey, monkeypatch):
    monkeypatch.setenv("TALA_STREAM_URL", valkey.url)  # a real online store: decisions by id are read from it
    with in_process_server(in_process_registry, MAX_BODY_BYTES="2000000") as server:
        run = run_schemathesis(server.url)
    print("schemathesis answers:", dict(sorted(run.statuses.items())))
    assert run.errors == [] and run.failures == [], (run.errors, run.failures[:5])
    assert {label for label, _ in run.statuses} == run.operations
    assert all(status < 500 for _, status in run.statuses)
    for operation in ("POST /v1/decisions", "POST /v1/decisions/batch"):
        assert {200, 422} <= run.statuses_of(operation), (operation, run.statuses_of(operation))
    assert sum(run.statuses.values()) > 6 * MAX_EXAMPLES


def test_the_serve_ingress_spec_declares_its_bearer_scheme_and_every_error():
    """The scheme the guard enforces, on every route but the open ones, and each route's refusals."""
    from tala_ray.serving.auth import OPEN_PATHS
    from tala_ray.serving.ingress import app

    spec = app.openapi()
    schemes = spec["components"]["securitySchemes"]
    assert list(schemes.values()) == [{"type": "http", "scheme": "bearer", "description": "An API key of the service."}]
    [name] = schemes
    for path, operations in spec["paths"].items():
        for operation in operations.values():
            responses = set(operation["responses"])
            assert {"200", "400", "413", "503"} <= responses, (path, responses)
            if path in OPEN_PATHS:
                assert "security" not in operation and "401" not in responses, path
            else:
                assert operation["security"] == [{name: []}] and "401" in responses, path
    for path in ("/v1/decisions", "/v1/decisions/batch"):
        assert {"409", "415", "422"} <= set(spec["paths"][path]["post"]["responses"]), path


@pytest.fixture(scope="module")
def serve_app(request):
    """`test_serve_app`'s running application (its `service` fixture, imported above)."""
    return request.getfixturevalue("service")


@pytest.mark.ray
def test_the_serve_app_passes_every_check(serve_app):
    run = run_schemathesis(serve_app.url, headers=AUTH)
    print("schemathesis answers (Serve):", dict(sorted(run.statuses.items())))
    assert run.errors == [] and run.failures == [], (run.errors, run.failures[:5])
    assert {label for label, _ in run.statuses} == run.operations
    assert all(status < 500 for _, status in run.statuses)
    for operation in ("POST /v1/decisions", "POST /v1/decisions/batch"):
        assert {200, 401, 422} <= run.statuses_of(operation), (operation, run.statuses_of(operation))


def serve_processes() -> list[psutil.Process]:
    """This session's Serve proxy and ingress replica processes (children of this test process,
    the Ray driver, whatever other clusters run on the machine)."""
    titles = ("ray::ProxyActor", "ray::ServeReplica:credit_decision:DecisionIngress")
    found = []
    for process in psutil.Process().children(recursive=True):
        try:
            if " ".join(process.cmdline()).startswith(titles):
                found.append(process)
        except psutil.NoSuchProcess:
            continue
    return found


@pytest.mark.ray
def test_the_serve_app_refuses_a_chunked_body_over_its_limit_as_it_arrives(serve_app):
    """300 MB without Content-Length against the 5 MB limit: a 413, and neither the proxy nor an
    ingress replica holds the body (their peak memory grows by far less than it)."""
    processes = serve_processes()
    assert any("ProxyActor" in " ".join(p.cmdline()) for p in processes), processes
    before = {p.pid: peak_rss_mb(p.pid) for p in processes}
    headers = AUTH | {"content-type": "application/json"}
    url = f"{serve_app.url}/v1/decisions"
    response = httpx.post(url, content=chunked_json_body(300), headers=headers, timeout=120)
    grown = {pid: peak_rss_mb(pid) - mb for pid, mb in before.items()}
    print("peak RSS growth (MB) by Serve process:", {pid: round(mb) for pid, mb in grown.items()})
    assert response.status_code == 413, (response.status_code, response.text[:300])
    assert "5000000 bytes" in response.json()["detail"]
    assert max(grown.values()) < 150, grown  # half the body: not held (58-106 MB measured, loaded machine)
