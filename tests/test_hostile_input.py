"""The decision service under hostile and out-of-range input (no Ray): never a 500, a 422 that names
the field and echoes at most a short excerpt of the input, bodies over the limit refused as they
arrive (chunked too), no non-finite score for any body inside the bounds.

The in-process app (the same body readers, error handlers and request guard as the Serve ingress)
through FastAPI's TestClient, or under a real uvicorn process where a crash or the memory of the
server is what is measured."""

from __future__ import annotations

import json
import math
import random
from datetime import UTC, datetime, timedelta

import httpx
import pyarrow as pa
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from serving_helpers import chunked_json_body, in_process_server, replayed, small_registry

from tala_ray.core.errors import UserError
from tala_ray.data import bounds
from tala_ray.features.online import MAX_EVENTS, MAX_LOANS
from tala_ray.serving.arrow_schema import ARROW_STREAM_MEDIA_TYPE
from tala_ray.serving.inprocess import create_app
from tala_ray.traffic.arrow_encode import encode_payloads, payload_table, table_bytes

JSON = {"content-type": "application/json"}
ARROW = {"content-type": ARROW_STREAM_MEDIA_TYPE}
MAX_INPUT_CHARS = 100  # the longest excerpt of the input a 422 may echo
BODY_LIMIT = 1_000_000


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(registry URI, request bodies of real applications)."""
    uri, world = small_registry(tmp_path_factory.mktemp("registry"))
    return uri, replayed(world, 10)


@pytest.fixture(scope="module")
def client(served):
    with TestClient(create_app(registry=served[0]), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def server(served):
    """The in-process app under uvicorn (its own process) with a 1 MB body limit."""
    with in_process_server(served[0], MAX_BODY_BYTES=str(BODY_LIMIT)) as running:
        yield running


@pytest.fixture(scope="module")
def body(served) -> dict:
    return served[1][0]


def with_field(body: dict, record: str, field: str, literal: str) -> bytes:
    """`body` as JSON text with `record.field` written as `literal` (e.g. NaN, which json.dumps cannot)."""
    text = json.dumps({**body, record: {**body[record], field: "__VALUE__"}})
    return text.replace('"__VALUE__"', literal).encode()


def assert_short_422(response: httpx.Response) -> list[dict]:
    """A 422 whose every problem echoes at most `MAX_INPUT_CHARS` of the input (loc parts included)."""
    assert response.status_code == 422, response.text[:500]
    assert len(response.content) < 8_000, len(response.content)
    detail = response.json()["detail"]
    for problem in detail:
        assert set(problem) >= {"loc", "msg"}, problem
        if "input" in problem:
            echo = problem["input"]
            assert len(echo if isinstance(echo, str) else json.dumps(echo)) <= MAX_INPUT_CHARS, problem
        assert all(len(str(part)) <= MAX_INPUT_CHARS for part in problem["loc"]), problem
    return detail


# --- never a 500 ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/decisions", "/v1/decisions/batch"])
@pytest.mark.parametrize("raw", [b"\xff\xfe\xfd", b'{"applicant": "\xc3\x28"}', b'{"applications": ["\xa0\xa1"]}'])
def test_a_json_body_that_is_not_utf8_is_a_422(client, path, raw):
    [problem] = assert_short_422(client.post(path, content=raw, headers=JSON))
    assert problem["loc"][0] == "body" and ("utf-8" in problem["msg"].lower() or "json" in problem["msg"].lower())


@pytest.mark.parametrize(
    ("record", "field", "literal", "echoed"),
    [
        ("application", "amount", "NaN", "NaN"),
        ("application", "amount", "-Infinity", "-Infinity"),
        ("application", "amount", "Infinity", "Infinity"),
        ("application", "amount", "1e309", "Infinity"),
        ("applicant", "device_price_usd", "Infinity", "Infinity"),
        ("application", "term_days", "NaN", "NaN"),
    ],
)
def test_a_non_finite_number_is_a_422_naming_the_field_and_echoing_it_as_text(
    client, body, record, field, literal, echoed
):
    for path, content in (
        ("/v1/decisions", with_field(body, record, field, literal)),
        ("/v1/decisions/batch", b'{"applications": [' + with_field(body, record, field, literal) + b"]}"),
    ):
        [problem] = assert_short_422(client.post(path, content=content, headers=JSON))
        prefix = ["body"] if path == "/v1/decisions" else ["body", "applications", 0]
        assert problem["loc"] == [*prefix, record, field] and problem["input"] == echoed, problem


def arrow_body(bodies: list[dict], name: str, values: list) -> bytes:
    table = payload_table(bodies)
    column = pa.array(values, table.schema.field(name).type)
    return table_bytes(table.set_column(table.schema.get_field_index(name), name, column))


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_a_non_finite_arrow_value_is_a_422_naming_the_application_and_field(client, served, value):
    bodies = served[1][:3]
    amounts = [b["application"]["amount"] for b in bodies]
    amounts[1] = value
    [problem] = assert_short_422(
        client.post("/v1/decisions/batch", content=arrow_body(bodies, "amount", amounts), headers=ARROW)
    )
    assert problem == {"loc": ["body", "applications", 1, "application", "amount"], "msg": "must be a finite number"}


def test_a_truncated_arrow_body_is_a_422(client, served):
    whole = encode_payloads(served[1])
    for cut in (1, 7, 100, len(whole) // 2, len(whole) - 1):
        [problem] = assert_short_422(client.post("/v1/decisions/batch", content=whole[:cut], headers=ARROW))
        assert problem["loc"] == ["body"] and "Arrow IPC stream" in problem["msg"], problem


def test_byte_flipped_arrow_bodies_are_never_a_5xx(server, served):
    """Random bytes of a valid body overwritten, 200 times, against a real server process (a crash
    of the decoder would kill it): a refusal (413, 422) or, when the body is still valid, a decision
    with finite numbers."""
    whole = encode_payloads(served[1][:5])
    rng = random.Random(17)
    statuses: dict[int, int] = {}
    with httpx.Client(base_url=server.url, timeout=60) as http:
        for _ in range(200):
            flipped = bytearray(whole)
            for _ in range(rng.choice([1, 2, 4, 8])):
                flipped[rng.randrange(len(flipped))] = rng.randrange(256)
            response = http.post("/v1/decisions/batch", content=bytes(flipped), headers=ARROW)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            assert response.status_code in (200, 413, 422), (response.status_code, response.text[:300])
            if response.status_code == 200:
                assert_finite_decisions(response.json()["decisions"])
            elif response.status_code == 422:
                assert_short_422(response)
        assert http.get("/healthz").status_code == 200
    assert statuses.get(422, 0) > 100, statuses


# --- a 422 echoes a short excerpt at most --------------------------------------------------------


def test_a_422_echoes_only_a_short_excerpt_of_the_input(client, body):
    huge = "x" * 200_000
    cases = {
        "a long string for an object": ("/v1/decisions", json.dumps({**body, "applicant": huge})),
        "a long unknown key": ("/v1/decisions", json.dumps({**body, huge: 1})),
        "a long list of wrong items": ("/v1/decisions", json.dumps({**body, "events": [huge] * 20})),
        "a long invalid JSON text": ("/v1/decisions", '{"applicant": ' + huge),
        "many bad applications": ("/v1/decisions/batch", json.dumps({"applications": [{"applicant": huge}] * 50})),
    }
    for name, (path, content) in cases.items():
        detail = assert_short_422(client.post(path, content=content.encode(), headers=JSON))
        assert len(detail) <= 21, (name, len(detail))
    many = assert_short_422(
        client.post("/v1/decisions/batch", content=cases["many bad applications"][1].encode(), headers=JSON)
    )
    assert many[-1]["loc"] == ["body"] and "more problems not listed" in many[-1]["msg"]


def test_an_arrow_422_echoes_only_a_short_excerpt_of_a_column_name(client, body):
    table = payload_table([body])
    table = table.append_column("z" * 100_000, pa.array([1]))
    [problem] = assert_short_422(client.post("/v1/decisions/batch", content=table_bytes(table), headers=ARROW))
    assert problem["msg"].startswith("unknown column")


def test_a_user_error_is_a_422_with_a_short_message():
    """The mapping the ingress uses for a `UserError` raised while deciding (`ingress._once`)."""
    from tala_ray.serving.error_body import install_error_handlers

    app = FastAPI()
    install_error_handlers(app)

    @app.get("/boom")
    async def boom() -> None:
        raise UserError("policy: cannot decide " + "y" * 50_000)

    [problem] = assert_short_422(TestClient(app).get("/boom"))
    assert (
        problem["loc"] == ["body"] and problem["msg"].startswith("policy: cannot decide") and len(problem["msg"]) <= 300
    )


# --- no non-finite score inside the bounds -------------------------------------------------------


def iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def extreme_body(body: dict, side: str) -> dict:
    """`body` with every number and time at the low or the high end of its bound, and as many events
    and loans as allowed."""
    floor, now = bounds.TIME_FLOOR, datetime.now(UTC)
    low = side == "low"

    def end(table: str, field: str) -> float:
        rule = bounds.bound(table, field)
        if low:
            return math.nextafter(rule.low, math.inf) if rule.low_exclusive else rule.low
        return rule.high

    signup = floor
    applied = floor if low else now - timedelta(seconds=1)
    disbursed = floor
    return {
        "applicant": {
            **body["applicant"],
            "signup_time": iso(signup),
            "device_price_usd": end("applicants", "device_price_usd"),
            "device_age_months": int(end("applicants", "device_age_months")),
        },
        "application": {
            "amount": end("applications", "amount"),
            "term_days": int(end("applications", "term_days")),
            "application_time": iso(applied),
        },
        "events": [
            {"event_time": iso(floor), "event_type": kind, "amount": end("events", "amount")}
            for kind in ("mm_in", "mm_out", "airtime", "bill_pay")
            for _ in range(MAX_EVENTS // 4)
        ],
        "loans": [
            {
                "disbursed_time": iso(disbursed),
                "due_time": iso(disbursed + timedelta(days=0 if low else bounds.MAX_TERM_DAYS)),
                "amount": end("loans", "amount"),
                "repaid": low,
                "days_late": int(end("loans", "days_late")),
            }
        ]
        * MAX_LOANS,
    }


def assert_finite_decisions(decisions: list[dict]) -> None:
    for decision in decisions:
        for field in ("limit", "default_probability", "uplift", "expected_profit"):
            value = decision[field]
            assert isinstance(value, float | int) and math.isfinite(value), (field, decision)


def test_bodies_at_every_bound_get_decisions_with_finite_numbers(client, body):
    bodies = [extreme_body(body, "low"), extreme_body(body, "high")]
    for extreme in bodies:
        response = client.post("/v1/decisions", json=extreme)
        assert response.status_code == 200, response.text[:500]
        assert_finite_decisions([response.json()])
    for content, headers in ((json.dumps({"applications": bodies}).encode(), JSON), (encode_payloads(bodies), ARROW)):
        response = client.post("/v1/decisions/batch", content=content, headers=headers)
        assert response.status_code == 200, response.text[:500]
        assert_finite_decisions(response.json()["decisions"])


# --- a body over the limit is refused as it arrives -----------------------------------------------


def test_a_chunked_body_over_the_limit_is_refused_without_buffering_it(server, body):
    """300 MB sent chunked (no Content-Length): a 413 once the limit is passed, and the server's
    peak memory does not grow with the body; a chunked body within the limit is decided."""
    peak_before = server.peak_rss_mb()
    response = httpx.post(f"{server.url}/v1/decisions", content=chunked_json_body(300), headers=JSON, timeout=120)
    grown = server.peak_rss_mb() - peak_before
    assert response.status_code == 413, (response.status_code, response.text[:300])
    assert str(BODY_LIMIT) in response.json()["detail"]
    assert grown < 40, f"peak RSS grew by {grown:.0f} MB"
    within = httpx.post(f"{server.url}/v1/decisions", content=iter([json.dumps(body).encode()]), headers=JSON)
    assert within.status_code == 200 and within.json()["decision"] in ("approve", "decline")
    declared = httpx.post(f"{server.url}/v1/decisions", content=b"x" * (BODY_LIMIT + 1), headers=JSON)
    assert declared.status_code == 413
