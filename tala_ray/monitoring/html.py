"""The report as one self-contained HTML page: the headline first, the alert table, then the plots
(inlined as data URIs) and the tables behind them."""

from __future__ import annotations

import base64
from html import escape

from tala_ray.monitoring.report import MonitorReport

STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #222; max-width: 1180px; }
.headline { padding: 14px 18px; border-radius: 6px; font-size: 17px; margin-bottom: 18px; }
.ALERT { background: #fdecea; border-left: 8px solid #c0392b; }
.PASS { background: #eafaf1; border-left: 8px solid #27ae60; }
.headline b { font-size: 22px; }
table { border-collapse: collapse; margin: 8px 0 20px; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
td.status-ALERT { background: #c0392b; color: white; font-weight: bold; }
td.status-PASS { background: #27ae60; color: white; font-weight: bold; }
td.status-SKIP { background: #999; color: white; }
img { max-width: 100%; display: block; margin: 6px 0 18px; }
.facts { color: #555; font-size: 13px; }
"""


def _image(name: str, png: bytes) -> str:
    data = base64.b64encode(png).decode()
    return f'<img alt="{escape(name)}" src="data:image/png;base64,{data}">'


def _cost(report: MonitorReport) -> str:
    cost = report.headline.cost
    if cost is None:
        return ""
    if cost.shortfall_usd is None:
        return (
            "<p>Outcomes of the alerted period are not known yet. Expected profit per application: "
            f"{cost.expected_before_usd or 0:.2f} USD before, {cost.expected_after_usd or 0:.2f} USD since.</p>"
        )
    return (
        f"<p><b>Cost:</b> realized {cost.realized_per_application_usd:.2f} vs expected "
        f"{cost.expected_per_application_usd:.2f} USD per application since {report.headline.since}: "
        f"<b>{cost.shortfall_usd:+,.0f} USD</b> over {cost.applications:,} applications with known results.</p>"
    )


def html_page(report: MonitorReport, plots: dict[str, bytes]) -> str:
    """The whole page; `plots` maps a title to PNG bytes, shown in order."""
    head = report.headline
    models = " and ".join(head.models) or "all models"
    since = f" drifted since <b>{head.since}</b>" if head.since else " checked"
    where = f" in <b>{escape(head.where)}</b>" if head.where else ""
    rows = "".join(
        f'<tr><td class="status-{c.status}">{c.status}</td><td>{escape(c.name)}</td>'
        f"<td>{escape(c.model)}</td><td>{c.since or ''}</td><td>{escape(c.summary)}</td></tr>"
        for c in report.checks
    )
    drifted = "".join(
        f"<tr><td>{escape(str(r['segment']))}</td><td>{escape(str(r['column']))}</td><td>{r['first_day']}</td>"
        f"<td>{r['days']}</td><td>{r['max_psi']:.3f}</td></tr>"
        for r in report.drift["drifted"]
    )
    images = "".join(f"<h2>{escape(name)}</h2>{_image(name, png)}" for name, png in plots.items())
    facts = (
        f"{report.decisions:,} decisions, {report.first_day} to {report.last_day}; as of {report.as_of:%Y-%m-%d %H:%M} "
        f"UTC; outcomes counted {report.outcomes['counted']:,} (duplicates {report.outcomes['duplicates']:,}, "
        f"late {report.outcomes['late']:,}); reference {report.reference_rows:,} rows."
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>tala-ray monitoring: {head.status}</title>
<style>{STYLE}</style></head>
<body>
<h1>Model monitoring</h1>
<div class="headline {head.status}" id="headline"><b>{head.status}</b> &mdash; {escape(models)}{since}{where}.<br>
{escape(head.text)}</div>
{_cost(report)}
<p class="facts">{escape(facts)}</p>
<h2>Checks</h2>
<table id="alerts"><tr><th>status</th><th>check</th><th>model</th><th>since</th><th>figures</th></tr>{rows}</table>
<h2>What drifted first</h2>
<table id="drifted"><tr><th>segment</th><th>column</th><th>first day</th><th>days</th><th>max PSI</th></tr>
{drifted}</table>
{images}
</body></html>
"""
