"""The prediction log on its own: typed columns from arrays and frames, segments, drops."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from shipyard.monitoring.logformat import CLASSES_METADATA_KEY, predictions_glob
from shipyard.serving.predlog import PredictionLog


def _read(root: Path, model: str = "m") -> Any:
    import duckdb

    return duckdb.sql(
        f"select * from read_parquet('{predictions_glob(root, model)}', "  # noqa: S608 - a test folder
        "hive_partitioning=true, union_by_name=true) order by request_id, row"
    ).df()


def _log(log: PredictionLog, request_id: str, inputs: Any, prediction: Any, **kw: Any) -> bool:
    options: dict[str, Any] = {
        "request_id": request_id, "timestamp": time.time(), "model": "m", "version": "1",
        "protocol": "v2", "inputs": inputs, "prediction": prediction, "latency_ms": 1.5,
    } | kw  # fmt: skip
    return log.log_prediction(**options)


def test_frames_with_text_columns_and_string_predictions(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path)
    frame = pd.DataFrame({"city": ["Oslo", "Rome"], "n": [1, 2]})
    assert _log(log, "a", frame, np.array(["yes", "no"], dtype=object))
    assert _log(log, "b", frame.head(1), np.array(["no"], dtype=object))
    log.close()
    rows = _read(tmp_path)
    assert list(rows["input.city"]) == ["Oslo", "Rome", "Oslo"]
    assert list(rows["input.n"]) == [1, 2, 1]
    assert list(rows["prediction"]) == ["yes", "no", "no"]
    assert list(rows["row"]) == [0, 1, 0]


def test_a_new_signature_mid_flush_gets_its_own_columns(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path)
    _log(log, "a", np.array([[1.0, 2.0]]), np.array([0]), columns=("x", "y"))
    _log(log, "b", np.array([[3.0]]), np.array([1]), columns=("z",), version="2")
    log.log_failure(
        request_id="c", timestamp=time.time(), model="m", version="2", protocol="v2",
        status=503, latency_ms=0.1,
    )  # fmt: skip
    log.close()
    rows = _read(tmp_path)
    assert list(rows["request_id"]) == ["a", "b", "c"]
    assert rows["input.x"].tolist()[0] == 1.0 and np.isnan(rows["input.x"].tolist()[1])
    assert rows["input.z"].tolist()[1] == 3.0
    assert list(rows["status"]) == [200, 200, 503]


def test_probabilities_carry_the_class_labels(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path)
    proba = np.array([[0.25, 0.75]])
    _log(log, "a", np.array([[1.0]]), np.array(["b"]), columns=("x",), proba=proba,
         classes=("a", "b"))  # fmt: skip
    log.close()
    (part,) = tmp_path.rglob("part-*.parquet")
    table = pq.read_table(part)
    assert table.column("proba").to_pylist() == [[0.25, 0.75]]
    assert json.loads(table.schema.metadata[CLASSES_METADATA_KEY]) == ["a", "b"]


def test_the_buffer_is_bounded_in_rows_and_counts_what_it_drops(tmp_path: Path) -> None:
    dropped: list[int] = []
    log = PredictionLog(tmp_path, max_queue=3, on_drop=dropped.append)
    assert _log(log, "a", np.zeros((2, 1)), np.zeros(2), columns=("x",))
    assert not _log(log, "b", np.zeros((2, 1)), np.zeros(2), columns=("x",))
    assert _log(log, "c", np.zeros((1, 1)), np.zeros(1), columns=("x",))
    assert dropped == [2] and log.dropped == 2 and log.pending == 3
    log.close()
    assert list(_read(tmp_path)["request_id"]) == ["a", "a", "c"]
    assert not list(tmp_path.rglob(".*.tmp"))


def test_a_request_that_asked_only_for_probabilities_has_no_prediction(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path)
    _log(log, "a", np.array([[1.0]]), np.array([1]), columns=("x",))
    _log(log, "b", np.array([[2.0], [3.0]]), None, columns=("x",), proba=np.full((2, 2), 0.5))
    log.close()
    rows = _read(tmp_path)
    assert rows["prediction"].tolist()[0] == 1 and rows["prediction"][1:].isna().all()
    assert rows["proba"][0] is None or rows["proba"].isna()[0]
    assert list(rows["proba"][2]) == [0.5, 0.5]


def test_a_record_that_cannot_be_logged_loses_only_itself(tmp_path: Path) -> None:
    dropped: list[int] = []
    errors: list[None] = []
    log = PredictionLog(tmp_path, on_drop=dropped.append, on_error=lambda: errors.append(None))
    for i in range(20):
        _log(log, f"good{i:02}", np.zeros((1, 1)), np.zeros(1), columns=("x",))
    _log(log, "bad", np.zeros((3, 1)), np.zeros(2), columns=("x",))  # 2 predictions, 3 rows
    log.log_feedback(request_id="f1", label=1)
    log.log_feedback(request_id="f2", label=1, row=2**40)  # beyond int32
    log.close()
    assert list(_read(tmp_path)["request_id"]) == [f"good{i:02}" for i in range(20)]
    feedback = pq.read_table(list((tmp_path / "feedback").rglob("part-*.parquet")))
    assert feedback["request_id"].to_pylist() == ["f1"]
    assert sorted(dropped) == [1, 3] and log.dropped == 4 and len(errors) == 2


def test_mixed_values_in_an_object_column_are_logged_as_text(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path)
    _log(log, "a", pd.DataFrame({"tag": ["x"]}, dtype=object), np.array([1]))
    _log(log, "b", pd.DataFrame({"tag": [5]}, dtype=object), np.array([1]))
    log.close()
    assert list(_read(tmp_path)["input.tag"]) == ["x", "5"]


def test_failed_writes_are_counted_as_lost_rows(tmp_path: Path) -> None:
    dropped: list[int] = []
    errors: list[None] = []
    (tmp_path / "predictions").write_text("a file where the folder should be")
    log = PredictionLog(tmp_path, on_drop=dropped.append, on_error=lambda: errors.append(None))
    _log(log, "a", np.zeros((3, 1)), np.zeros(3), columns=("x",))
    log.close()
    assert dropped == [3] and log.dropped == 3 and len(errors) == 1


def test_input_columns_keep_the_signatures_types_whichever_way_they_came(
    tmp_path: Path,
) -> None:
    names, types = ("flag", "small", "f32", "city"), ("bool", "int8", "float32", "string")
    frame = pd.DataFrame(
        {
            "flag": np.array([True]),
            "small": np.array([3], dtype=np.int8),
            "f32": np.array([1.5], dtype=np.float32),
            "city": pd.Series(["Oslo"], dtype="str"),
        }
    )
    log = PredictionLog(tmp_path)
    _log(log, "frame", frame, np.array([1]), columns=names, types=types)
    log.close()
    uniform = ("a", "b"), ("int8", "int8")
    array_log = PredictionLog(tmp_path / "array")
    _log(array_log, "x", np.array([[1, 2]], dtype=np.int8), np.array([1]), columns=uniform[0],
         types=uniform[1])  # fmt: skip
    array_log.close()
    (part,) = (tmp_path / "predictions").rglob("part-*.parquet")
    schema = pq.read_schema(part)
    assert [str(schema.field(f"input.{n}").type) for n in names] == [
        "bool", "int8", "float", "string"
    ]  # fmt: skip
    (part,) = (tmp_path / "array").rglob("part-*.parquet")
    assert str(pq.read_schema(part).field("input.a").type) == "int8"
