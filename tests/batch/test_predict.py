"""shipyard.batch.predict on real models and real files, on both stores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import shipyard
from shipyard import data
from shipyard.batch import predict
from shipyard.errors import InputMismatchError, InvalidArgumentError

pytestmark = pytest.mark.integration
STORE_KINDS = ("sqlite",)  # batch files; the store layer runs on PostgreSQL in tests/store


def _cancer() -> tuple[pd.DataFrame, pd.DataFrame]:
    frame = load_breast_cancer(as_frame=True).frame
    frame.insert(0, "patient_id", np.arange(len(frame)) + 1000)
    return frame, frame.drop(columns=["patient_id", "target"])


def _log_classifier(frame: pd.DataFrame, x: pd.DataFrame) -> LogisticRegression:
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(x, frame["target"])
    with shipyard.start_run(experiment="train", log_code=False) as run:
        run.log_model(clf, "cancer", input_example=x.head())
    return clf


def test_parquet_in_several_batches_equals_in_process_predict(home: Path, tmp_path: Path) -> None:
    frame, x = _cancer()
    clf = _log_classifier(frame, x)
    source = tmp_path / "in.parquet"
    frame.to_parquet(source, row_group_size=100)
    seen: list[tuple[int, int | None]] = []
    result = predict(
        "cancer@1",
        source,
        tmp_path / "out" / "preds.parquet",
        batch_size=64,
        proba=True,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert result.batches >= 9 and result.rows == len(frame) == seen[-1][0]
    assert seen[-1][1] == len(frame) and len(seen) == result.batches
    out = pq.read_table(result.output).to_pandas()
    assert list(out.columns) == [
        "patient_id",
        "target",
        "prediction",
        "proba_0",
        "proba_1",
        "model_version",
    ]
    np.testing.assert_array_equal(out["prediction"], clf.predict(x))
    np.testing.assert_allclose(out[["proba_0", "proba_1"]], clf.predict_proba(x))
    np.testing.assert_array_equal(out["patient_id"], frame["patient_id"])
    assert set(out["model_version"]) == {"cancer@1"} and result.model_version == "cancer@1"
    assert result.dataset.ref == "cancer-predictions@1"
    assert not list(result.output.parent.glob(".*tmp"))


def test_csv_with_explicit_keys_regression(home: Path, tmp_path: Path) -> None:
    frame = load_diabetes(as_frame=True).frame
    x = frame.drop(columns="target")
    reg = RandomForestRegressor(n_estimators=10, random_state=0).fit(x, frame["target"])
    with shipyard.start_run(experiment="train", log_code=False) as run:
        run.log_model(reg, "diabetes", input_example=x.head())
    source = tmp_path / "in.csv"
    frame.assign(row=np.arange(len(frame))).to_csv(source, index=False)
    result = predict("diabetes", source, tmp_path / "p.parquet", key_columns=["row"], batch_size=50)
    out = pq.read_table(result.output).to_pandas()
    assert list(out.columns) == ["row", "prediction", "model_version"]
    np.testing.assert_allclose(out["prediction"], reg.predict(x))
    np.testing.assert_array_equal(out["row"], np.arange(len(frame)))


def test_dataset_input_has_lineage_to_model_and_input(home: Path, tmp_path: Path) -> None:
    frame, x = _cancer()
    clf = _log_classifier(frame, x)
    data.add(frame, "patients")
    result = predict("cancer", "patients@1", tmp_path / "p.parquet", batch_size=200)
    np.testing.assert_array_equal(
        pq.read_table(result.output).column("prediction").to_numpy(), clf.predict(x)
    )
    ws = shipyard.open_workspace()
    assert [v.ref for _, v in ws.backend.run_dataset_versions([result.run_id], "input")] == [
        "patients@1"
    ]
    assert [v.ref for _, v in ws.backend.run_dataset_versions([result.run_id], "output")] == [
        result.dataset.ref
    ]
    run = shipyard.get_run(result.run_id)
    assert run.tags["shipyard.batch.model_version"] == "cancer@1"
    lineage = data.lineage("patients@1")
    assert [(r, v.ref) for r, v in lineage.derived] == [(result.run_id, "cancer-predictions@1")]


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (lambda f: f.drop(columns=["mean radius"]), InputMismatchError),
        (lambda f: f.assign(**{"mean area": "big"}), InvalidArgumentError),
    ],
)
def test_bad_input_writes_nothing(home: Path, tmp_path: Path, change: object, error: type) -> None:
    frame, x = _cancer()
    _log_classifier(frame, x)
    source = tmp_path / "bad.parquet"
    change(frame).to_parquet(source)  # type: ignore[operator]
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(error):
        predict("cancer@1", source, out / "p.parquet", batch_size=64)
    assert list(out.iterdir()) == []
    assert shipyard.open_workspace().backend.list_datasets() == []


def test_unknown_key_column_and_executor_are_refused(home: Path, tmp_path: Path) -> None:
    frame, x = _cancer()
    _log_classifier(frame, x)
    source = tmp_path / "in.parquet"
    frame.to_parquet(source)
    with pytest.raises(InputMismatchError, match="nope"):
        predict("cancer", source, tmp_path / "p.parquet", key_columns=["nope"])
    with pytest.raises(InvalidArgumentError, match="executor"):
        predict("cancer", source, tmp_path / "p.parquet", executor="spark")
    assert not (tmp_path / "p.parquet").exists()


def test_ray_executor_writes_batches_in_order(home: Path, tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")
    frame, x = _cancer()
    clf = _log_classifier(frame, x)
    source = tmp_path / "in.parquet"
    frame.to_parquet(source, row_group_size=57)
    local = predict("cancer@1", source, tmp_path / "local.parquet", batch_size=57, proba=True)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        result = predict(
            "cancer@1", source, tmp_path / "p.parquet", batch_size=57, executor="ray", proba=True
        )
    finally:
        ray.shutdown()
    out = pq.read_table(result.output).to_pandas()
    assert pq.read_table(local.output).equals(pq.read_table(result.output))
    assert result.batches == 10
    # The same prediction log: the same rows, inputs, predictions and probabilities, in order.
    import glob

    import shipyard
    from shipyard.monitoring.logformat import predictions_glob

    files = sorted(glob.glob(predictions_glob(shipyard.open_workspace().settings.home, "cancer")))
    logged = pd.concat([pq.read_table(f).to_pandas() for f in files])
    jobs = {job: rows.sort_values("row") for job, rows in logged.groupby("request_id")}
    assert len(jobs) == 2
    first, second = jobs.values()
    assert list(first["row"]) == list(range(len(frame)))
    assert (first["protocol"] == "batch").all()
    compared = [c for c in first.columns if c.startswith("input.") or c == "prediction"]
    pd.testing.assert_frame_equal(
        first[compared].reset_index(drop=True), second[compared].reset_index(drop=True)
    )
    np.testing.assert_allclose(np.stack(first["proba"]), np.stack(second["proba"]))
    np.testing.assert_array_equal(first["prediction"], clf.predict(x))
    np.testing.assert_array_equal(out["patient_id"], frame["patient_id"])
    np.testing.assert_array_equal(out["prediction"], clf.predict(x))
