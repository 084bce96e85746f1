"""docs/grafana/sonostream.json and docs/prometheus/alerts.yml against the real tools: promtool
checks the rules, and a real Prometheus scraping a running streamer evaluates every dashboard
query and every alert's measure, each of which must return data (a renamed metric or label, a
wrong histogram query or a rule that fails to evaluate turns this red)."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.streamer.test_viewer import free_port

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "docs" / "grafana" / "sonostream.json"
ALERTS = ROOT / "docs" / "prometheus" / "alerts.yml"
pytestmark = pytest.mark.skipif(not (shutil.which("promtool") and shutil.which("prometheus")),
                                reason="needs Debian's prometheus package (.ci/run installs it)")


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) with Grafana's variables filled in as Grafana would."""
    dash = json.loads(DASHBOARD.read_text())
    out = []
    for panel in dash["panels"]:
        for target in panel["targets"]:
            expr = target["expr"].replace("$__rate_interval", "15s").replace("$stream", ".*")
            assert "$" not in expr, expr
            out.append((panel["title"], expr))
    return out


def alert_rules() -> list[tuple[str, str, str]]:
    """(name, expression, its measure: the part left of the final threshold comparison)."""
    text = ALERTS.read_text()
    rules = []
    for name, expr in re.findall(r"- alert: (\w+)\n\s+expr: (?:>-\n)?(.*?)\n\s+for:", text, re.S):
        expr = " ".join(expr.split())
        measure, op, threshold = re.fullmatch(r"(.*) (>|<) ([\d.]+)", expr).groups()
        rules.append((name, expr, measure))
    return rules


def test_promtool_accepts_the_rules():
    run = subprocess.run(["promtool", "check", "rules", str(ALERTS)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in run.stdout
    assert {name for name, _, _ in alert_rules()} == {
        "StreamerSourceDown", "StreamerDroppingFrames", "StreamerLatencyP99OverBudget",
        "StreamerInvalidFrames", "StreamerBackendDown", "StreamerBackendModelChanged"}


def test_the_rules_fire_on_invalid_frames_and_on_a_changed_model(tmp_path):
    """promtool's rule unit test on two streams whose inference server restarted with a 7-class
    model under the same name, at 30 fps for 15 minutes: ``seven`` as a streamer counted it
    without re-describing the model (every frame invalid, backend up), ``changed`` as it does
    now (every frame dropped, backend down, model changed). At 10 minutes exactly these fire."""
    per_min = 30 * 60

    def stream(name, invalid, dropped, up, changed):
        labels = f'instance="scanner:9108",stream="{name}"'
        return [{"series": f'streamer_frames_total{{{labels},outcome="{o}"}}', "values": v}
                for o, v in (("captured", f"0+{per_min}x15"), ("invalid", f"0+{invalid}x15"),
                             ("dropped", f"0+{dropped}x15"))] + [
            {"series": f"streamer_backend_up{{{labels}}}", "values": f"{up}x15"},
            {"series": f"streamer_backend_model_changed{{{labels}}}", "values": f"{changed}x15"}]

    firing = [("seven", "StreamerInvalidFrames"), ("changed", "StreamerDroppingFrames"),
              ("changed", "StreamerBackendDown"), ("changed", "StreamerBackendModelChanged")]
    spec = {"rule_files": [str(ALERTS)], "evaluation_interval": "1m", "tests": [{
        "interval": "1m",
        "input_series": stream("seven", per_min, 0, 1, 0) + stream("changed", 0, per_min, 0, 1),
        "promql_expr_test": [{
            "expr": 'count by (alertname, stream) (ALERTS{alertstate="firing"})',
            "eval_time": "10m",
            "exp_samples": [{"labels": f'{{alertname="{a}", stream="{s}"}}', "value": 1}
                            for s, a in firing]}]}]}
    (tmp_path / "test.yml").write_text(json.dumps(spec))  # YAML reads JSON
    run = subprocess.run(["promtool", "test", "rules", str(tmp_path / "test.yml")],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def query(base: str, expr: str) -> list:
    url = base + "api/v1/query?" + urllib.parse.urlencode({"query": expr})
    body = json.loads(urllib.request.urlopen(url, timeout=10).read())
    assert body["status"] == "success", (expr, body)
    return body["data"]["result"]


def has_data(result: list) -> bool:
    return any(not math.isnan(float(r["value"][1])) for r in result)


@pytest.mark.slow
def test_every_dashboard_and_alert_expression_returns_data(tmp_path):
    metrics, prom = free_port(), free_port()
    streamer = subprocess.Popen(
        [sys.executable, "-m", "streamer", "run", "--source", "sim", "--metrics-port", str(metrics),
         "--publish", f"tcp://127.0.0.1:{free_port()}", "--duration", "150"],
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    (tmp_path / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: ['{ALERTS}']\n"
        "scrape_configs:\n  - job_name: sonostream\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{metrics}']}}]\n")
    prometheus = subprocess.Popen(
        ["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}",
         f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{prom}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{prom}/"
    try:
        wanted = [*dashboard_queries(), *[(n, m) for n, _, m in alert_rules()],
                  ("stream variable", "count by (stream) (streamer_fps)")]
        missing = dict(wanted)
        deadline = time.monotonic() + 120
        while missing and time.monotonic() < deadline:
            time.sleep(2)
            try:
                missing = {t: e for t, e in missing.items() if not has_data(query(base, e))}
            except OSError:  # Prometheus still starting
                continue
        assert not missing, f"no data for {missing}; streamer alive: {streamer.poll() is None}"
        for _, expr, _ in alert_rules():
            query(base, expr)  # the whole rule evaluates (it need not fire)
        rules = json.loads(urllib.request.urlopen(base + "api/v1/rules").read())["data"]["groups"]
        health = {r["name"]: r["health"] for g in rules for r in g["rules"]}
        assert health and set(health.values()) == {"ok"}, health
        assert query(base, 'streamer_fps{stream="main"}')  # the default stream label
    finally:
        for proc in (prometheus, streamer):
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
