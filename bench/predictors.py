"""Benchmark: CPU per call of the credit and uplift predictors, as the decision service calls them.

Usage: .venv/bin/python bench/predictors.py [--registry /tmp/perf/registry] [--payloads /tmp/perf/payloads.json]
                                            [--sizes 1 16 100 1000] [--models credit_pd uplift]

Every model in the registry (or `--models`) is loaded at its champion (else latest) version. The
input is built once, untimed: the payloads' features through `features_from_requests`, repeated to
the largest size, and one frame per size with exactly the model's columns in its order (as the
serving graph passes them). Prints milliseconds of process CPU time per call (`time.process_time`,
best and median of `--repeats` rounds, each round at least `--min-seconds` of CPU) for
`predict_proba`, `contributions` and `score` (credit; `score` where the predictor has it) and
`effect` (uplift).

No registry? `tala-ray demo` leaves one in runs/demo/registry (credit_pd: LightGBM on a logistic
start, uplift: an X-learner); the serving tests' small models (logistic, T-learner) are in
/tmp/perf/registry when the serving benchmarks set it up.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd


def load_predictors(registry_uri: str, names: list[str] | None) -> dict[str, Any]:
    """name -> loaded predictor (credit or uplift, by the manifest's kind)."""
    from tala_ray.core.registry import Registry
    from tala_ray.models.predictors import load_predictor

    registry = Registry(registry_uri)
    predictors = {}
    for name in names or registry.names():
        ref = "champion" if "champion" in registry.aliases(name) else "latest"
        predictors[name] = load_predictor(registry_uri, name, ref)
    return predictors


def payload_features(path: str) -> pd.DataFrame:
    """The feature frame of every payload in the file (a JSON list of application requests)."""
    from tala_ray.features.online import ApplicationRequest, features_from_requests

    payloads = json.loads(Path(path).read_text())
    return features_from_requests([ApplicationRequest.model_validate(p) for p in payloads])


def inputs_by_size(features: pd.DataFrame, names: list[str], sizes: list[int]) -> dict[int, pd.DataFrame]:
    """One frame per size: the feature rows repeated in order, the model's columns only, a fresh index."""
    repeats = -(-max(sizes) // len(features))
    tiled = pd.concat([features] * repeats, ignore_index=True)
    return {n: tiled.iloc[:n].reindex(columns=list(names)).reset_index(drop=True) for n in sizes}


def cpu_ms_per_call(call: Callable[[], Any], repeats: int, min_seconds: float) -> tuple[float, float]:
    """(best, median) CPU milliseconds per call over `repeats` rounds of at least `min_seconds` each."""
    call()
    rounds = []
    for _ in range(repeats):
        calls, started = 0, time.process_time()
        while (elapsed := time.process_time() - started) < min_seconds or calls < 3:
            call()
            calls += 1
        rounds.append(elapsed / calls * 1000)
    return min(rounds), statistics.median(rounds)


def methods(predictor: Any) -> list[str]:
    if hasattr(predictor, "effect"):
        return ["effect"]
    return ["predict_proba", "contributions"] + (["score"] if hasattr(predictor, "score") else [])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--registry", default="/tmp/perf/registry")
    parser.add_argument("--payloads", default="/tmp/perf/payloads.json")
    parser.add_argument("--models", nargs="*", help="model names (default: every model in the registry)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 16, 100, 1000])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--min-seconds", type=float, default=0.2)
    args = parser.parse_args(argv)
    if not Path(args.registry).exists() and "://" not in args.registry:
        print(
            f"no registry at {args.registry}: run `tala-ray demo` (it leaves one in runs/demo/registry) "
            "and pass --registry runs/demo/registry",
            file=sys.stderr,
        )
        return 2
    predictors = load_predictors(args.registry, args.models)
    features = payload_features(args.payloads)
    print(f"CPU ms per call, best / median of {args.repeats} rounds; registry {args.registry}")
    print(f"{'model':<28}{'family':<20}{'method':<15}" + "".join(f"{'n=' + str(n):>16}" for n in args.sizes))
    for name, predictor in predictors.items():
        family = type(getattr(predictor.estimator, "estimator_", predictor.estimator)).__name__
        frames = inputs_by_size(features, predictor.feature_names, args.sizes)
        for method in methods(predictor):
            call = getattr(predictor, method)
            cells = [
                cpu_ms_per_call(lambda f=frames[n], call=call: call(f), args.repeats, args.min_seconds)
                for n in args.sizes
            ]
            print(
                f"{name:<28}{family:<20}{method:<15}"
                + "".join(f"{best:>8.3f} /{median:>6.3f}" for best, median in cells),
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
