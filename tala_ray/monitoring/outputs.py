"""Everything a monitor run writes under its output directory: report.json, report.md, report.html
(self-contained), metrics.prom (Prometheus text), plots/*.png and the joined outcomes (Parquet)."""

from __future__ import annotations

from pyarrow import fs as pafs

from tala_ray.core.storage import join_path, resolve_filesystem
from tala_ray.monitoring.config import MonitorConfig
from tala_ray.monitoring.html import html_page
from tala_ray.monitoring.monitor import MonitorResult
from tala_ray.monitoring.outcomes import write_joined
from tala_ray.monitoring.plots import drift_png, drift_segment, profit_png, scores_png, uplift_png, vintages_png
from tala_ray.monitoring.prometheus import metrics_text
from tala_ray.monitoring.report import MonitorReport, build_report, markdown


def _plots(result: MonitorResult) -> dict[str, tuple[str, bytes]]:
    """File stem -> (title, PNG) of every plot the run has data for."""
    reference = result.reference_means
    plots = {
        "drift": (f"Drift by day ({drift_segment(result.drift)})", drift_png(result.drift)),
        "scores": ("Credit scores by day", scores_png(result.decisions.frame, reference)),
    }
    if len(result.realized) and (result.realized["labelled"] > 0).any():
        plots["vintages"] = ("Vintages", vintages_png(result.estimated, result.realized, result.reference_auc))
        plots["profit"] = ("Profit per application", profit_png(result.realized))
    if result.uplift is not None:
        plots["uplift"] = ("Live uplift (exploration bucket)", uplift_png(result.uplift))
    return plots


def write_outputs(result: MonitorResult, config: MonitorConfig, out: str) -> MonitorReport:
    """Write the run's files under `out` (a path or URI); return the report naming them."""
    filesystem, root = resolve_filesystem(out)
    filesystem.create_dir(join_path(root, "plots"), recursive=True)
    report = build_report(result, config)
    plots = _plots(result)
    files = {"joined outcomes": write_joined(result.joined, out)}
    for stem, (_, png) in plots.items():
        files[f"plot {stem}"] = _write(filesystem, join_path(root, "plots", f"{stem}.png"), png)
    names = {"json": "report.json", "markdown": "report.md", "html": "report.html", "metrics": "metrics.prom"}
    files |= {kind: join_path(root, name) for kind, name in names.items()}
    report = report.model_copy(update={"files": files})
    _write(filesystem, files["json"], report.model_dump_json(indent=2).encode())
    _write(filesystem, files["markdown"], markdown(report).encode())
    _write(filesystem, files["html"], html_page(report, dict(plots.values())).encode())
    _write(filesystem, files["metrics"], metrics_text(report))
    return report


def _write(filesystem: pafs.FileSystem, path: str, data: bytes) -> str:
    with filesystem.open_output_stream(path) as stream:
        stream.write(data)
    return path
