"""The KubeRay RayService manifest's `serveConfigV2`, generated from the Serve config that ships.

`python -m tala_ray.serving.kuberay deploy/kuberay/rayservice.yaml` (what `make kuberay` runs)
rewrites the manifest's `serveConfigV2` block, its last key, from `serve_configs/credit_decision.yaml`
with what changes on Kubernetes (`CLUSTER_CHANGES`), checked like `tala-ray serve` checks a config
(Ray's `ServeDeploySchema`, our `AppArgs` and `user_config`s). Everything above the block is the
hand-written cluster (head and worker groups, autoscaling, GCS fault tolerance, upgrade strategy).
`--pin` resolves the model aliases in the registry (its `registry_uri`) to the versions they point at
now, so that applying the manifest after a promotion rolls the replicas (Serve rebuilds an application
only when its args change).
"""

from __future__ import annotations

import argparse
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import yaml

from tala_ray.core.errors import UserError
from tala_ray.serving.launch import BUILDER_IMPORT_PATH, MODEL_ARGS, load_serve_config

SERVE_CONFIG = Path("serve_configs/credit_decision.yaml")
MARKER = "  serveConfigV2: |\n"  # the manifest's last key: everything after it is generated
BUCKET = "s3://tala-ray-artifacts"  # as cluster.yaml's TALA_* settings

# What differs from the shipped file on Kubernetes: pods reach Serve over the pod network, so it
# binds every interface of the pod (a ClusterIP Service and a NetworkPolicy keep it private), a
# proxy runs on every node (KubeRay's serve Service sends traffic to each pod whose proxy is
# healthy), every location is on object storage, and the ingress may grow to about one replica a
# core of the worker group, so that Serve's autoscaling drives the cluster's.
CLUSTER_CHANGES: dict[str, Any] = {
    "proxy_location": "EveryNode",
    "http_options": {"host": "0.0.0.0"},
    "args": {"registry_uri": f"{BUCKET}/registry", "prediction_log_uri": f"{BUCKET}/prediction_log"},
    "autoscaling_config": {"DecisionIngress": {"max_replicas": 16}},
}


def serve_config_v2(serve_config: Path = SERVE_CONFIG, pin: bool = False) -> str:
    """The Serve config for the RayService: the file with `CLUSTER_CHANGES`, validated; with `pin`,
    model aliases replaced by the versions the registry resolves them to now."""
    raw = yaml.safe_load(serve_config.read_text())
    raw["proxy_location"] = CLUSTER_CHANGES["proxy_location"]
    raw["http_options"] = {**raw.get("http_options", {}), **CLUSTER_CHANGES["http_options"]}
    ours = [a for a in raw["applications"] if a.get("import_path") == BUILDER_IMPORT_PATH]
    if not ours:
        raise UserError(f"{serve_config}: no application built by {BUILDER_IMPORT_PATH}")
    for application in ours:
        application["args"] |= CLUSTER_CHANGES["args"]
        for deployment in application.get("deployments") or []:
            if deployment["name"] in CLUSTER_CHANGES["autoscaling_config"]:
                deployment["autoscaling_config"] |= CLUSTER_CHANGES["autoscaling_config"][deployment["name"]]
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as candidate:
        candidate.write(yaml.safe_dump(raw, sort_keys=False))
        candidate.flush()
        checked = load_serve_config(candidate.name, pin_versions=pin)
    if pin:
        pinned = {a.name: a.args for a in checked.applications}
        for application in ours:
            application["args"] |= {f: pinned[application["name"]][f] for f in MODEL_ARGS if f in application["args"]}
    return yaml.safe_dump(raw, sort_keys=False)


def render_manifest(manifest: str, serve_config: Path = SERVE_CONFIG, pin: bool = False) -> str:
    """`manifest` (the YAML text) with its `serveConfigV2` block replaced by `serve_config_v2`."""
    end = manifest.find(MARKER) + len(MARKER)
    block = manifest[end:].splitlines()
    if manifest.count(MARKER) != 1 or any(line.strip() and not line.startswith("    ") for line in block):
        raise UserError(f"manifest: expected one {MARKER.strip()!r} block, as the last key of spec")
    return manifest[:end] + textwrap.indent(serve_config_v2(serve_config, pin), "    ")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("manifest", type=Path, help="the RayService manifest to update in place")
    parser.add_argument("--serve-config", type=Path, default=SERVE_CONFIG)
    parser.add_argument("--pin", action="store_true", help="pin model aliases to the versions they point at now")
    options = parser.parse_args(argv)
    options.manifest.write_text(render_manifest(options.manifest.read_text(), options.serve_config, options.pin))
    print(f"wrote {options.manifest} (serveConfigV2 from {options.serve_config})")


if __name__ == "__main__":
    main()
