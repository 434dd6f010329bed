"""An uplift challenger in shadow on the demo's traffic, judged against the truth.

Usage: .venv/bin/python bench/uplift_shadow.py [--applicants 20000] [--holdout 5000] [--requests 2000]

Generates a three-option world (none, a reminder, a reminder with an on-time discount; the demo's size)
and a fresh holdout world, trains a credit model (LightGBM) and two multi-arm uplift models on the
experiment cohort (champion: the X-learner of `experiments/uplift_multiarm.yaml`'s winning shape;
challenger: a DR-learner), deploys `serve_configs/credit_decision_multiarm.yaml` (the challenger in
shadow) on a local Ray cluster, sends the holdout's applications as the demo does (replayed request
bodies over HTTP, in batches), and prints from the prediction log: what the challenger's effects would
change, how far its effects are from the champion's, and each model's decisions valued with the true
default probability of the option they picked (USD per application).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import yaml

from tala_ray.core.net import free_port
from tala_ray.core.registry import ArtifactMetadata, Registry
from tala_ray.data.design import REMINDER, Design
from tala_ray.data.generate import WorldSpec, generate_world
from tala_ray.data.schema import FX_PER_USD, INTERVENTION, NO_INTERVENTION, truth_pd_column
from tala_ray.evaluation.truth import read_truth
from tala_ray.features.build import build_feature_table
from tala_ray.features.definitions import feature_set_version
from tala_ray.features.table import read_feature_manifest, read_feature_table
from tala_ray.models.credit import ESTIMATORS
from tala_ray.models.uplift import UPLIFT_ESTIMATORS
from tala_ray.monitoring.prediction_log import read_prediction_log
from tala_ray.policy.decision import PolicyParams
from tala_ray.policy.economics import expected_profit
from tala_ray.serving.launch import deploy, load_serve_config
from tala_ray.traffic.replay import read_world_tables, request_payload

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "serve_configs" / "credit_decision_multiarm.yaml"
ARMS = Design(arms=(REMINDER, INTERVENTION))
CHAMPION = {"final_num_leaves": 3, "final_min_child_samples": 50, "nuisance_n_estimators": 400}
API_KEY = "uplift-shadow-bench-" + "b" * 16
BATCH = 100


def _worlds(root: Path, applicants: int, holdout: int) -> tuple[str, str, str]:
    paths = [str(root / name) for name in ("world", "features", "holdout", "holdout_features")]
    generate_world(WorldSpec(applicants=applicants, seed=7, design=ARMS), paths[0], progress=False)
    generate_world(WorldSpec(applicants=holdout, seed=8, design=ARMS), paths[2], progress=False)
    build_feature_table(paths[0], paths[1], engine="local")
    return paths[1], paths[2], paths[3]


def _register(features: str, registry: Registry, costs: dict[str, float]) -> None:
    table, names = read_feature_table(features), read_feature_manifest(features).feature_names
    fsv = feature_set_version()
    credit = ESTIMATORS["gbm"](seed=7).fit(table[names], table["defaulted"].to_numpy())
    metadata = ArtifactMetadata(kind="credit", family="gbm", feature_set_version=fsv, feature_names=names)
    registry.set_alias("credit_pd", "champion", registry.register("credit_pd", credit.to_files(), metadata).version)
    experiment = table[table["cohort"] == "experiment"]
    y, t, X = 1.0 - experiment["defaulted"].to_numpy(), experiment["treatment"].to_numpy(), experiment[names]
    for alias, family, params in (("champion", "x_learner", CHAMPION), ("challenger", "dr_learner", {})):
        model = UPLIFT_ESTIMATORS[family](**params, seed=7).fit(y, t, X=X)
        metadata = ArtifactMetadata(
            kind="uplift",
            family=family,
            feature_set_version=fsv,
            feature_names=names,
            extra={"intervention_costs": costs},
        )
        version = registry.register("uplift_multiarm", model.to_files(), metadata).version
        registry.set_alias("uplift_multiarm", alias, version)


def _serve(workdir: Path, registry: Registry) -> str:
    (workdir / "api_keys").write_text(API_KEY + "\n")
    raw = yaml.safe_load(CONFIG.read_text())
    port = free_port()
    raw["http_options"]["port"] = port
    raw["applications"][0]["args"].update(
        registry_uri=registry.uri,
        api_key_file=str(workdir / "api_keys"),
        prediction_log_uri=str(workdir / "prediction_log"),
        log_flush_interval_s=0.5,
    )
    path = workdir / "serve.yaml"
    path.write_text(yaml.safe_dump(raw))
    deploy(load_serve_config(path, pin_versions=True), timeout_s=300)
    return f"http://127.0.0.1:{port}"


def _traffic(url: str, holdout: str, requests: int) -> dict[str, int]:
    """Replayed holdout applications, in batches over HTTP; request id -> application id."""
    world = read_world_tables(holdout)
    sample = world["applications"].sample(min(requests, len(world["applications"])), random_state=0)
    decided: dict[str, int] = {}
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=120) as client:
        for start in range(0, len(sample), BATCH):
            chunk = sample.iloc[start : start + BATCH]
            bodies = [request_payload(world, row) for _, row in chunk.iterrows()]
            response = client.post("/v1/decisions/batch", json={"applications": bodies})
            response.raise_for_status()
            for decision, application_id in zip(
                response.json()["decisions"], chunk["application_id"].tolist(), strict=True
            ):
                decided[decision["request_id"]] = application_id
    return decided


def _logged(root: Path, ids: set[str], timeout_s: float = 120.0) -> pd.DataFrame:
    deadline = time.monotonic() + timeout_s
    while True:
        log = read_prediction_log(str(root))
        if ids <= set(log.loc[log["role"] == "uplift_shadow", "request_id"]) or time.monotonic() > deadline:
            return log
        time.sleep(1.0)


def _true_profit_usd(
    rows: pd.DataFrame, terms: np.ndarray, truth: pd.DataFrame, policy: PolicyParams, countries: pd.Series
) -> float:
    """Mean profit per application of the logged decisions under the true PD of the option each picked."""
    options = rows["intervention"].fillna(NO_INTERVENTION)
    true_pd = np.array([truth.at[a, truth_pd_column(o)] for a, o in zip(rows["application_id"], options, strict=True)])
    costs = {NO_INTERVENTION: 0.0, **policy.arm_costs()}
    cost = options.map(costs).to_numpy(dtype=float)
    lent = rows["limit"].to_numpy(dtype=float)
    profit = np.where(lent > 0, expected_profit(true_pd, lent, terms, cost, policy), 0.0)
    fx = countries.loc[rows["application_id"]].map(FX_PER_USD).to_numpy(dtype=float)
    return float(np.mean(profit / fx))


def main() -> None:
    import ray
    from ray import serve

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--applicants", type=int, default=20_000)
    parser.add_argument("--holdout", type=int, default=5_000)
    parser.add_argument("--requests", type=int, default=2_000)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="uplift_shadow_"))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        policy_args = yaml.safe_load(CONFIG.read_text())["applications"][0]["args"]["policy"]
        policy = PolicyParams.model_validate(policy_args)
        features, holdout, _ = _worlds(workdir, args.applicants, args.holdout)
        registry = Registry(str(workdir / "registry"))
        _register(features, registry, policy.arm_costs())
        url = _serve(workdir, registry)
        decided = _traffic(url, holdout, args.requests)
        log = _logged(workdir / "prediction_log", set(decided))
    finally:
        serve.shutdown()
        ray.shutdown()
    log = log[log["request_id"].isin(decided)].assign(application_id=lambda f: f["request_id"].map(decided))
    champion = log[log["role"] == "decision"].set_index("request_id")
    shadow = log[log["role"] == "uplift_shadow"].set_index("request_id").loc[champion.index]
    truth = read_truth(holdout, champion["application_id"].to_numpy(), [truth_pd_column(o) for o in ARMS.options])
    tables = read_world_tables(holdout)
    countries = (
        tables["applications"].merge(tables["applicants"], on="applicant_id").set_index("application_id")["country"]
    )
    terms = champion["requested_term_days"].to_numpy(dtype=float)  # the shadow rows are the same requests
    changes = shadow["changed_by_uplift_challenger"].value_counts(normalize=True).round(4).to_dict()

    def arm_uplift(rows: pd.DataFrame, arm: str) -> np.ndarray:
        return rows["uplift_by_arm"].map(lambda by_arm: dict(by_arm)[arm]).to_numpy(dtype=float)

    gap = {
        arm: float(np.mean(np.abs(arm_uplift(shadow, arm) - arm_uplift(champion, arm)))) for arm in policy.arm_costs()
    }
    figures = {
        "decisions": len(champion),
        "champion": f"uplift_multiarm@{champion['uplift_model_version'].iloc[0]} (x_learner)",
        "challenger": f"uplift_multiarm@{shadow['uplift_model_version'].iloc[0]} (dr_learner)",
        "changed_by_uplift_challenger": changes,
        "mean_abs_uplift_gap_by_arm": {k: round(v, 4) for k, v in gap.items()},
        "option_shares": {
            "champion": champion["intervention"].fillna("none").value_counts(normalize=True).round(3).to_dict(),
            "challenger": shadow["intervention"].fillna("none").value_counts(normalize=True).round(3).to_dict(),
        },
        "true_profit_usd_per_application": {
            role: round(_true_profit_usd(rows.reset_index(), terms, truth, policy, countries), 4)
            for role, rows in (("champion", champion), ("challenger", shadow))
        },
    }
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
