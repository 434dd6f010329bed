"""The load generator (closed loop, pre-encoded bodies) and the free-port helper, against a real local HTTP server."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tala_ray.core.net import free_port
from tala_ray.traffic.loadgen import closed_loop, paced

RECEIVED: list[tuple[str, bytes]] = []  # (content type, body) of every request the server read


class Echo(BaseHTTPRequestHandler):
    """200 for /ok, 503 elsewhere; remembers what it was sent."""

    protocol_version = "HTTP/1.1"  # keep-alive, as the load generator's clients expect

    def do_POST(self) -> None:  # noqa: N802 - the standard library's name
        RECEIVED.append((self.headers["Content-Type"], self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200 if self.path == "/ok" else 503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    RECEIVED.clear()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_closed_loop_cycles_the_bodies_and_counts_items(server_url: str) -> None:
    figures = closed_loop(f"{server_url}/ok", [{"n": 1}, {"n": 2}], {}, concurrency=2, seconds=0.5, items_per_request=3)
    assert figures.requests >= 4 and figures.failed == 0 and figures.status_counts == {200: figures.requests}
    assert len(figures.latencies_ms) == figures.requests and figures.percentile_ms(50) > 0
    assert figures.items_per_s == pytest.approx(3 * figures.requests / figures.seconds)
    sent = [json.loads(body) for _, body in RECEIVED]
    assert {body["n"] for body in sent} == {1, 2} and {kind for kind, _ in RECEIVED} == {"application/json"}


def test_pre_encoded_bodies_are_sent_as_they_are(server_url: str) -> None:
    raw = b'{"a":  1}'  # not what json= would write: proves the bytes are not re-encoded
    headers = {"Content-Type": "application/vnd.test"}
    figures = closed_loop(f"{server_url}/ok", [raw], headers, concurrency=1, seconds=0.2)
    assert figures.requests > 0 and figures.failed == 0
    assert set(RECEIVED) == {("application/vnd.test", raw)}
    failing = paced(f"{server_url}/down", ['{"a": 1}'], {"Content-Type": "application/json"}, rate=20, seconds=0.25)
    assert failing.requests == failing.failed == 5 and failing.status_counts == {503: 5}
    assert RECEIVED[-1] == ("application/json", b'{"a": 1}')


def test_no_answer_is_a_failure_with_status_zero() -> None:
    figures = closed_loop(f"http://127.0.0.1:{free_port()}/ok", [{}], {}, concurrency=1, seconds=0.1, timeout_s=1)
    assert figures.requests > 0 and figures.failed == figures.requests and set(figures.status_counts) == {0}


def test_free_port_can_be_bound() -> None:
    port = free_port()
    assert 0 < port < 65536
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
