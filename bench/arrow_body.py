"""Benchmark: CPU per application to turn a batch request body into the raw feature columns.

Usage: .venv/bin/python bench/arrow_body.py [--applications 1000] [--repeats 7]

The same applications (a simulated world, payloads as `replay.request_payload` builds them) as a
JSON body (`BatchDecisionRequest.model_validate_json` + `request_columns`) and as an Arrow IPC
stream (`decode_batch`). Prints the best of `--repeats` CPU times (`time.process_time`) per
application for each, and the ratio.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

from tala_ray.data.world import simulate_chunk
from tala_ray.features.online import request_columns
from tala_ray.serving.arrow_body import decode_batch
from tala_ray.serving.schemas import BatchDecisionRequest
from tala_ray.traffic.arrow_encode import encode_payloads
from tala_ray.traffic.replay import request_payload


def make_payloads(n: int) -> list[dict]:
    """Requests for the first `n` applications of a simulated world."""
    world = {name: table.to_pandas() for name, table in simulate_chunk(11, 0, 0, n).items() if name != "truth"}
    return [request_payload(world, row) for _, row in world["applications"].iterrows()]


def best_cpu_seconds(run: Callable[[], object], repeats: int) -> float:
    """The smallest CPU time of `repeats` runs."""
    times = []
    for _ in range(repeats):
        started = time.process_time()
        run()
        times.append(time.process_time() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--applications", type=int, default=1_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    payloads = make_payloads(args.applications)
    n = len(payloads)
    json_body = json.dumps({"applications": payloads}).encode()
    arrow_body = encode_payloads(payloads)
    events = sum(len(payload["events"]) for payload in payloads)

    def json_path() -> object:
        return request_columns(BatchDecisionRequest.model_validate_json(json_body).applications)

    json_s = best_cpu_seconds(json_path, args.repeats)
    arrow_s = best_cpu_seconds(lambda: decode_batch(arrow_body, n), args.repeats)
    encode_s = best_cpu_seconds(lambda: encode_payloads(payloads), max(1, args.repeats // 3))
    print(
        f"{n} applications, {events / n:.0f} events each; body {len(json_body) / n / 1e3:.1f} kB/application as JSON, "
        f"{len(arrow_body) / n / 1e3:.1f} kB as Arrow"
    )
    print(f"JSON validation + request_columns: {json_s / n * 1e6:8.1f} us CPU per application")
    print(f"Arrow decode_batch:                {arrow_s / n * 1e6:8.1f} us CPU per application")
    print(f"ratio (JSON / Arrow):              {json_s / arrow_s:8.1f}x")
    print(f"(client side) encode_payloads:     {encode_s / n * 1e6:8.1f} us CPU per application")


if __name__ == "__main__":
    main()
