"""``shipyard monitor ...`` through the real entry point: tables, a deployment's log, alert
rules run twice, events, the HTML report and the Prometheus exporter over a socket."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests._cli import ROOT, run_shipyard
from tests.monitoring._logs import spread, write_predictions

pytestmark = pytest.mark.e2e
# the CLI's monitoring commands; the store layer runs on PostgreSQL in tests/store
STORE_KINDS = ("sqlite",)

HOUR = timedelta(hours=1)


def _tables(tmp_path: Path, rows: int = 4000) -> tuple[Path, Path]:
    rng = np.random.default_rng(7)
    ref = pd.DataFrame(
        {
            "age": rng.normal(40, 10, rows),
            "income": rng.normal(50, 5, rows),
            "plan": rng.choice(["basic", "pro", "team"], rows, p=[0.5, 0.3, 0.2]),
        }
    )
    cur = pd.DataFrame(
        {
            "age": rng.normal(48, 10, rows),  # planted: +0.8 sd
            "income": rng.normal(50, 5, rows),
            "plan": rng.choice(["basic", "pro", "team"], rows, p=[0.5, 0.3, 0.2]),
        }
    )
    ref.to_parquet(tmp_path / "ref.parquet")
    cur.to_parquet(tmp_path / "cur.parquet")
    return tmp_path / "ref.parquet", tmp_path / "cur.parquet"


def test_drift_of_two_tables_as_json_html_and_exit_code(home: Path, tmp_path: Path) -> None:
    ref, cur = _tables(tmp_path)
    done = run_shipyard(
        "monitor", "drift", "--reference", str(ref), "--current", str(cur), "--json",
        "--html", str(tmp_path / "drift.html"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    by_column = {c["column"]: c for c in result["columns"]}
    assert set(by_column) == {"age", "income", "plan"}
    for col in by_column.values():
        assert {"test", "statistic", "p_value", "distance", "drifted"} <= set(col)
    assert by_column["age"]["drifted"] and by_column["age"]["test"] == "ks"
    assert not by_column["income"]["drifted"] and not by_column["plan"]["drifted"]
    assert result["drifted_columns"] == ["age"]
    page = (tmp_path / "drift.html").read_text()
    assert "<html" in page and "data:image/png;base64," in page

    text = run_shipyard(
        "monitor", "drift", "-r", str(ref), "--current", str(cur), "--fail-on-drift",
        "--share-threshold", "0.3",
    )  # fmt: skip
    assert text.returncode == 1, text.stderr
    assert "DRIFT" in text.stdout and "age" in text.stdout

    chosen = run_shipyard(
        "monitor", "drift", "-r", str(ref), "--current", str(cur), "--json",
        "--test", "age=psi", "--threshold", "age=5", "--columns", "age,income",
    )  # fmt: skip
    assert chosen.returncode == 0, chosen.stderr
    age = json.loads(chosen.stdout)["columns"][0]
    assert age["column"] == "age" and age["distance_metric"] == "psi"
    assert age["threshold"] == 5 and not age["drifted"]


def test_drift_against_a_dataset_version(home: Path, tmp_path: Path) -> None:
    ref, cur = _tables(tmp_path)
    added = run_shipyard("data", "add", str(ref), "--name", "customers")
    assert added.returncode == 0, added.stderr
    done = run_shipyard(
        "monitor", "drift", "--reference", "customers@1", "--current", str(cur), "--json"
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["reference"] == "customers@1"
    assert result["drifted_columns"] == ["age"]
    assert not any(c["from_profile"] for c in result["columns"])

    stored = run_shipyard(
        "monitor", "drift", "-r", "customers@1", "--current", str(cur), "--profile-only", "--json"
    )
    assert stored.returncode == 0, stored.stderr
    from_profile = json.loads(stored.stdout)
    assert all(c["from_profile"] for c in from_profile["columns"])
    assert from_profile["drifted_columns"] == ["age"]
    assert {c["test"] for c in from_profile["columns"]} == {"chi2"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--test", "age"], "--test takes COLUMN=VALUE"),
        (["--threshold", "age=high"], "is not a number"),
        (["--correction", "holm"], "correction"),
        (["--columns", "nope"], "nope"),
    ],
)
def test_bad_drift_options_are_one_line_errors(
    home: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    ref, cur = _tables(tmp_path, rows=200)
    done = run_shipyard("monitor", "drift", "-r", str(ref), "--current", str(cur), *args)
    assert done.returncode != 0
    assert message in done.stderr and "Traceback" not in done.stderr


def _traffic(home: Path, tmp_path: Path) -> datetime:
    """Two complete hours of a deployment's log: the first like the reference, the second
    with ``age`` shifted; the reference is dataset ``customers@1``."""
    ref, _ = _tables(tmp_path)
    assert run_shipyard("data", "add", str(ref), "--name", "customers").returncode == 0
    rng = np.random.default_rng(3)
    now = datetime.now(UTC)
    start = now.replace(minute=0, second=0, microsecond=0) - 3 * HOUR
    for hour, shift in ((0, 0.0), (1, 15.0)):
        inputs = pd.DataFrame(
            {
                "age": rng.normal(40 + shift, 10, 300),
                "income": rng.normal(50, 5, 300),
                "plan": rng.choice(["basic", "pro", "team"], 300, p=[0.5, 0.3, 0.2]),
            }
        )
        write_predictions(
            home, "churn", inputs, timestamps=spread(start + hour * HOUR, 300, HOUR),
            predictions=(inputs["age"] > 45).astype(int).tolist(),
        )  # fmt: skip
    return start


def test_drift_and_report_of_a_deployment(home: Path, tmp_path: Path) -> None:
    start = _traffic(home, tmp_path)
    done = run_shipyard(
        "monitor", "drift", "--reference", "customers@1", "--current", "churn", "--window", "1h",
        "--since", start.strftime("%Y-%m-%dT%H:%M:%S"),
        "--until", (start + 2 * HOUR).strftime("%Y-%m-%dT%H:%M:%S"), "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    first, second = result["windows"]
    assert first["rows"] == second["rows"] == 300
    assert first["drift"]["drifted_columns"] == []
    assert second["drift"]["drifted_columns"] == ["age"]
    assert first["health"]["requests"] == 300

    out = tmp_path / "report" / "churn.html"
    report = run_shipyard(
        "monitor", "report", "churn", "--reference", "customers@1", "--out", str(out),
        "--json", str(tmp_path / "churn.json"), "--since", start.isoformat(),
        "--until", (start + 2 * HOUR).isoformat(),
    )  # fmt: skip
    assert report.returncode == 0, report.stderr
    page = out.read_text()
    assert page.count("data:image/png;base64,") >= 4 and "age" in page
    content = json.loads((tmp_path / "churn.json").read_text())
    assert [w["rows"] for w in content["windows"]] == [300, 300]
    assert content["windows"][1]["drift"]["drifted_columns"] == ["age"]


def test_alert_rules_fire_once_and_events_are_listed(home: Path, tmp_path: Path) -> None:
    _traffic(home, tmp_path)
    config = tmp_path / "monitors.yaml"
    config.write_text(
        "monitors:\n"
        "  - model: churn\n"
        "    window: 1h\n"
        "    reference: customers@1\n"
        "    rules:\n"
        "      - name: age-drift\n"
        "        metric: drift.column.age.distance\n"
        "        threshold: 0.2\n"
        "        severity: error\n"
    )
    first = run_shipyard("monitor", "run", "--config", str(config))
    assert first.returncode == 0, first.stderr
    assert "FIRING" in first.stdout and "age-drift" in first.stdout
    again = run_shipyard("monitor", "run", "--config", str(config))
    assert again.returncode == 0, again.stderr
    assert "FIRING" not in again.stdout and "0 event(s)" in again.stdout

    listed = run_shipyard("monitor", "events", "--model", "churn", "--json")
    assert listed.returncode == 0, listed.stderr
    events = json.loads(listed.stdout)
    assert [(e["rule"], e["state"], e["severity"]) for e in events][-1] == (
        "age-drift",
        "firing",
        "error",
    )
    table = run_shipyard("monitor", "events")
    assert "age-drift" in table.stdout

    broken = tmp_path / "broken.yaml"
    broken.write_text(
        "monitors:\n  - model: churn\n    rules:\n      - name: x\n        metric: nope\n"
    )
    bad = run_shipyard("monitor", "run", "--config", str(broken))
    assert bad.returncode != 0 and "nope" in bad.stderr and "Traceback" not in bad.stderr


def test_exporter_serves_the_latest_window_over_http(home: Path, tmp_path: Path) -> None:
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    _traffic(home, tmp_path)
    config = tmp_path / "monitors.yaml"
    config.write_text(
        "monitors:\n  - model: churn\n    window: 1h\n    reference: customers@1\n"
        "    rules:\n      - name: share\n        metric: drift.share\n        threshold: 0.9\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    server = subprocess.Popen(
        [sys.executable, "-c", "from shipyard.cli import main; main()", "monitor", "exporter",
         "--config", str(config), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert "http://127.0.0.1:" in line, line + (server.stderr.read() if server.stderr else "")
        url = line.split("at ", 1)[1].split()[0]
        deadline = time.monotonic() + 30
        while True:
            try:
                body = httpx.get(url if url.endswith("/metrics") else url + "/metrics").text
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body)
            for s in family.samples
        }
        # The latest complete hour holds no traffic; the exporter shows its rows (0) and the
        # rule as not firing rather than inventing drift.
        assert samples[("shipyard_alerts_firing", (("model", "churn"), ("rule", "share"),
                                                   ("severity", "warning")))] == 0  # fmt: skip
    finally:
        server.terminate()
        server.communicate(timeout=30)


def test_run_backfills_a_bounded_number_of_windows(home: Path, tmp_path: Path) -> None:
    _traffic(home, tmp_path)  # the drifted hour ended two hours ago
    config = tmp_path / "monitors.yaml"
    config.write_text(
        "monitors:\n  - model: churn\n    window: 1h\n    reference: customers@1\n"
        "    rules:\n      - name: age\n        metric: drift.column.age.distance\n"
        "        threshold: 0.2\n"
    )
    done = run_shipyard("monitor", "run", "--config", str(config), "--backfill", "1")
    assert done.returncode == 0, done.stderr
    assert "FIRING" not in done.stdout and "1 new window(s)" in done.stdout


def test_one_broken_monitor_does_not_stop_the_others(home: Path, tmp_path: Path) -> None:
    _traffic(home, tmp_path)
    config = tmp_path / "monitors.yaml"
    config.write_text(
        "monitors:\n"
        "  - model: churn\n    window: 1h\n    reference: customers-typo@1\n"
        "    rules:\n      - {name: age, metric: drift.column.age.distance, threshold: 0.2}\n"
        "  - model: churn2\n    window: 1h\n    reference: customers@1\n"
        "    rules:\n      - {name: age, metric: drift.column.age.distance, threshold: 0.2}\n"
    )
    done = run_shipyard("monitor", "run", "--config", str(config))
    assert done.returncode == 1
    assert "monitor churn:" in done.stderr and "customers-typo@1" in done.stderr
    assert "churn2:" in done.stderr + done.stdout  # evaluated (it has no traffic yet)
    assert "Traceback" not in done.stderr


def test_a_mistyped_table_path_is_not_taken_for_a_deployment(home: Path, tmp_path: Path) -> None:
    ref, _ = _tables(tmp_path, rows=100)
    done = run_shipyard("monitor", "drift", "-r", str(ref), "--current", "data/typo.parquet")
    assert done.returncode != 0
    assert "data/typo.parquet" in done.stderr and "prediction log" not in done.stderr
