"""The in-process graph's decisions for fixed bodies, as canonical JSON bytes (request ids removed).

Usage: .venv/bin/python scripts/decision_bytes.py REGISTRY WORLD OUT [--compare BEFORE]

Decides 300 applications replayed from WORLD (seed 3) with the champions of REGISTRY three ways:
the first 100 as single JSON decisions, all 300 as one JSON batch and as one Arrow batch; writes
them to OUT with sorted keys. `--compare BEFORE` then checks OUT's bytes against BEFORE's and
exits 1, printing the first differing decision, when they differ.

The models are loaded as serving loads them (their manifests signed by a key of TALA_TRUSTED_KEYS)
and served under the feature-set version they were trained on, said when the code's differs (the
version hashes the feature code's source text, so reformatting the code changes it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import orjson
from fastapi.testclient import TestClient

from tala_ray.core.registry import Registry
from tala_ray.features.definitions import feature_set_version
from tala_ray.serving.arrow_schema import ARROW_STREAM_MEDIA_TYPE
from tala_ray.serving.inprocess import InProcessSettings, create_app
from tala_ray.traffic.arrow_encode import encode_payloads
from tala_ray.traffic.replay import read_world_tables, sample_payloads

APPLICATIONS, SINGLES, SEED = 300, 100, 3


def _without_id(decision: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in decision.items() if key != "request_id"}


def trained_feature_set(registry: str) -> str | None:
    """The feature-set version the champion credit model (the in-process server's default) was trained on."""
    store, name = Registry(registry), InProcessSettings.model_fields["credit_model"].default
    return store.manifest(name, store.resolve(name, "champion")).feature_set_version


def decisions(registry: str, world: str) -> dict[str, list[dict[str, Any]]]:
    """Single, JSON-batch and Arrow-batch decisions of the same replayed applications."""
    payloads = sample_payloads(read_world_tables(world), APPLICATIONS, seed=SEED)
    trained, current = trained_feature_set(registry), feature_set_version()
    if trained != current:
        print(
            f"note: the models were trained on feature set {trained}, the code computes {current}; served as {trained}"
        )
    client = TestClient(create_app(registry=registry, expected_feature_set_version=trained))
    singles = [_without_id(client.post("/v1/decisions", json=p).json()) for p in payloads[:SINGLES]]
    batch = client.post("/v1/decisions/batch", json={"applications": payloads}).json()
    arrow = client.post(
        "/v1/decisions/batch", content=encode_payloads(payloads), headers={"content-type": ARROW_STREAM_MEDIA_TYPE}
    ).json()
    return {
        "singles": singles,
        "batch": [_without_id(d) for d in batch["decisions"]],
        "arrow": [_without_id(d) for d in arrow["decisions"]],
    }


def first_difference(before: dict[str, list[Any]], after: dict[str, list[Any]]) -> str | None:
    """Where two recordings first differ (section, position and both decisions), or None."""
    for section in sorted(set(before) | set(after)):
        old, new = before.get(section, []), after.get(section, [])
        for position, (was, now) in enumerate(zip(old, new, strict=False)):
            if orjson.dumps(was, option=orjson.OPT_SORT_KEYS) != orjson.dumps(now, option=orjson.OPT_SORT_KEYS):
                return f"{section}[{position}]:\n  before {was}\n  after  {now}"
        if len(old) != len(new):
            return f"{section}: {len(old)} decisions before, {len(new)} after"
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("registry")
    parser.add_argument("world")
    parser.add_argument("out", type=Path)
    parser.add_argument("--compare", type=Path, help="An earlier OUT to compare the bytes with.")
    args = parser.parse_args()
    result = decisions(args.registry, args.world)
    data = orjson.dumps(result, option=orjson.OPT_SORT_KEYS)
    args.out.write_bytes(data)
    declines = sum(d["decision"] == "decline" for d in result["batch"])
    print("decisions", *(len(result[k]) for k in ("singles", "batch", "arrow")), "declines", declines)
    if args.compare is None:
        return 0
    before = args.compare.read_bytes()
    if before == data:
        print(f"identical: {len(data)} bytes, the same as {args.compare}")
        return 0
    print(f"DIFFERENT from {args.compare}:", first_difference(orjson.loads(before), result) or "key order or encoding")
    return 1


if __name__ == "__main__":
    sys.exit(main())
