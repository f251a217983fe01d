"""Reading the prediction log: segments written exactly per the format contract."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shipyard.errors import InvalidArgumentError, NotFoundError
from shipyard.monitoring.logformat import segment_folder
from shipyard.monitoring.logs import (
    LATE_WRITE_SLACK,
    input_table,
    join_labels,
    log_span,
    logged_inputs,
    read_labels,
    read_predictions,
    segment_files,
)
from tests.monitoring._logs import (
    spread,
    write_failures,
    write_feedback,
    write_half_written,
    write_predictions,
)

T0 = datetime(2024, 5, 1, 10, tzinfo=UTC)


def _inputs(n: int, offset: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "amount": [offset + i for i in range(n)],
            "plan": ["free", "pro"] * (n // 2) + ["free"] * (n % 2),
        }
    )


def test_rows_come_back_in_time_order_with_plain_input_names(tmp_path: Path) -> None:
    later = spread(T0 + timedelta(minutes=30), 3, timedelta(minutes=10))
    write_predictions(tmp_path, "churn", _inputs(3, 100), timestamps=later, predictions=[1, 0, 1])
    earlier = spread(T0, 2, timedelta(minutes=10))
    write_predictions(
        tmp_path, "churn", _inputs(2), timestamps=earlier, predictions=[0, 1],
        proba=[[0.8, 0.2], [0.3, 0.7]], classes=[0, 1], latency_ms=[3.0, 4.0],
    )  # fmt: skip
    table = read_predictions("churn", root=tmp_path)
    assert table.column_names == [
        "amount", "plan", "prediction", "proba", "status", "latency_ms", "version",
        "timestamp", "request_id", "row", "label", "label_timestamp", "label_delay_seconds",
    ]  # fmt: skip
    assert table["amount"].to_pylist() == [0.0, 1.0, 100.0, 101.0, 102.0]
    assert table["timestamp"].to_pylist() == [*earlier, *later]
    assert table["proba"].to_pylist() == [[0.8, 0.2], [0.3, 0.7], None, None, None]
    assert table["status"].to_pylist() == [200] * 5
    assert table.schema.field("timestamp").type == pa.timestamp("us", tz="UTC")
    assert table.schema.metadata[b"shipyard.classes"] == b"[0, 1]"
    assert table["label"].null_count == 5


def test_the_range_includes_start_excludes_end(tmp_path: Path) -> None:
    stamps = [
        T0 - timedelta(seconds=1),
        T0,
        T0 + timedelta(minutes=59, seconds=59),
        T0 + timedelta(hours=1),
    ]
    # As the server files them: one segment per hour its requests arrived in, whenever the
    # flush happened (a request of 10:59:59 flushed at 11:00:03 still goes under 10:00).
    for hour, rows in (
        (T0 - timedelta(hours=1), [0]),
        (T0, [1, 2]),
        (T0 + timedelta(hours=1), [3]),
    ):
        write_predictions(
            tmp_path, "churn", _inputs(4).iloc[rows], timestamps=[stamps[i] for i in rows],
            predictions=rows, written_at=hour,
        )  # fmt: skip
    table = read_predictions("churn", root=tmp_path, start=T0, end=T0 + timedelta(hours=1))
    assert table["prediction"].to_pylist() == [1, 2]
    naive = read_predictions("churn", root=tmp_path, start=T0.replace(tzinfo=None))
    assert naive["prediction"].to_pylist() == [1, 2, 3]


def test_a_segment_filed_by_its_write_time_is_still_found(tmp_path: Path) -> None:
    """Not what the server does; the extra hour of folders read past ``end`` allows it."""
    write_predictions(
        tmp_path, "churn", _inputs(1), timestamps=[T0 + timedelta(minutes=59, seconds=59)],
        predictions=[7], written_at=T0 + timedelta(hours=1, seconds=3),
    )  # fmt: skip
    table = read_predictions("churn", root=tmp_path, start=T0, end=T0 + timedelta(hours=1))
    assert table["prediction"].to_pylist() == [7]
    assert LATE_WRITE_SLACK >= timedelta(minutes=1)


def test_hours_outside_the_range_are_never_opened(tmp_path: Path) -> None:
    write_predictions(tmp_path, "churn", _inputs(2), timestamps=[T0, T0], predictions=[0, 1])
    far = segment_folder(tmp_path, "predictions", "churn", T0 + timedelta(days=3))
    far.mkdir(parents=True)
    (far / "part-broken.parquet").write_bytes(b"not parquet")
    table = read_predictions("churn", root=tmp_path, start=T0, end=T0 + timedelta(hours=1))
    assert table.num_rows == 2
    with pytest.raises(InvalidArgumentError, match="cannot read"):
        read_predictions("churn", root=tmp_path)


def test_hidden_segments_being_written_are_skipped(tmp_path: Path) -> None:
    write_predictions(tmp_path, "churn", _inputs(2), timestamps=[T0, T0], predictions=[0, 1])
    hidden = write_half_written(tmp_path, "churn", T0)
    assert hidden.exists()
    assert str(hidden) not in segment_files(tmp_path, "predictions", "churn")
    assert read_predictions("churn", root=tmp_path).num_rows == 2


def test_segments_with_different_inputs_are_read_by_name(tmp_path: Path) -> None:
    write_predictions(tmp_path, "churn", _inputs(2), timestamps=[T0, T0], predictions=[0, 1])
    wider = _inputs(1).assign(region=["eu"])[["region", "amount", "plan"]]
    write_predictions(
        tmp_path, "churn", wider, timestamps=[T0 + timedelta(minutes=1)], predictions=[1],
        version="2",
    )  # fmt: skip
    table = read_predictions("churn", root=tmp_path)
    assert table["region"].to_pylist() == [None, None, "eu"]
    assert table["version"].to_pylist() == ["1", "1", "2"]
    assert sorted(logged_inputs("churn", root=tmp_path)) == ["amount", "plan", "region"]
    only = read_predictions("churn", root=tmp_path, columns=["plan"], labels=False)
    assert only.column_names[0] == "plan" and "amount" not in only.column_names


def test_an_input_named_like_a_log_column_keeps_its_prefix(tmp_path: Path) -> None:
    frame = pd.DataFrame({"timestamp": [5, 6], "status": ["a", "b"]})
    write_predictions(
        tmp_path, "churn", frame, timestamps=[T0, T0 + timedelta(seconds=1)], predictions=[0, 1]
    )
    table = read_predictions("churn", root=tmp_path)
    assert table["input.timestamp"].to_pylist() == [5, 6]
    assert table["status"].to_pylist() == [200, 200]
    assert input_table(table).to_pydict() == {"timestamp": [5, 6], "status": ["a", "b"]}


def test_failed_requests_are_rows_without_inputs(tmp_path: Path) -> None:
    write_predictions(tmp_path, "churn", _inputs(2), timestamps=[T0, T0], predictions=[0, 1])
    types = {"amount": pa.float64(), "plan": pa.string()}
    write_failures(tmp_path, "churn", timestamps=[T0 + timedelta(seconds=1)], input_types=types)
    table = read_predictions("churn", root=tmp_path)
    assert table["status"].to_pylist() == [200, 200, 500]
    assert table["prediction"].to_pylist() == [0, 1, None]
    assert input_table(table).num_rows == 2
    assert input_table(table, successful=False).num_rows == 3


def test_labels_join_by_request_and_row_latest_wins(tmp_path: Path) -> None:
    write_predictions(
        tmp_path, "churn", _inputs(5), timestamps=[T0] * 5, predictions=[0, 1, 1, 0, 1],
        request_ids=["a", "a", "a", "b", "c"], rows=[0, 1, 2, 0, 0],
    )  # fmt: skip
    write_feedback(
        tmp_path,
        [
            ("a", None, 1, T0 + timedelta(minutes=10)),  # every row of request a
            ("a", 2, 0, T0 + timedelta(minutes=20)),  # row 2 corrected later
            ("b", 0, 1, T0 + timedelta(hours=1)),
            ("b", 0, 0, T0 + timedelta(hours=2)),  # the latest wins
            ("zzz", 0, 1, T0 + timedelta(hours=2)),  # another model's request
        ],
    )
    write_feedback(tmp_path, [("a", 1, 0, T0 + timedelta(minutes=5))])  # older than a/None
    table = read_predictions("churn", root=tmp_path)
    assert table["label"].to_pylist() == [1, 1, 0, 0, None]
    assert table["label_delay_seconds"].to_pylist() == [600.0, 600.0, 1200.0, 7200.0, None]
    assert table["label_timestamp"][2].as_py() == T0 + timedelta(minutes=20)
    unlabelled = read_predictions("churn", root=tmp_path, labels=False)
    assert "label" not in unlabelled.column_names


def test_text_labels_stay_text_and_mixed_labels_are_json(tmp_path: Path) -> None:
    write_predictions(
        tmp_path, "churn", _inputs(2), timestamps=[T0, T0], predictions=["no", "yes"],
        request_ids=["a", "b"],
    )  # fmt: skip
    write_feedback(tmp_path, [("a", 0, "yes", T0 + timedelta(seconds=1))])
    assert read_predictions("churn", root=tmp_path)["label"].to_pylist() == ["yes", None]
    write_feedback(tmp_path, [("b", 0, [1, 2], T0 + timedelta(seconds=2))])
    assert read_predictions("churn", root=tmp_path)["label"].to_pylist() == ['"yes"', "[1, 2]"]


def test_a_missing_log_names_the_models_that_have_one(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no model has a log"):
        read_predictions("churn", root=tmp_path)
    write_predictions(tmp_path, "other", _inputs(1), timestamps=[T0], predictions=[0])
    with pytest.raises(NotFoundError, match=r"'churn'.*models with a log: other"):
        read_predictions("churn", root=tmp_path)
    with pytest.raises(NotFoundError):
        log_span("churn", root=tmp_path)


def test_a_range_without_segments_is_an_empty_table(tmp_path: Path) -> None:
    write_predictions(tmp_path, "churn", _inputs(1), timestamps=[T0], predictions=[0])
    later = T0 + timedelta(days=2)
    table = read_predictions("churn", root=tmp_path, start=later, end=later + timedelta(hours=1))
    assert table.num_rows == 0
    assert {"prediction", "status", "timestamp", "label"} <= set(table.column_names)
    assert input_table(table).num_columns == 0
    with pytest.raises(InvalidArgumentError, match="before it starts"):
        read_predictions("churn", root=tmp_path, start=later, end=T0)


def test_a_log_in_an_older_format_is_refused_clearly(tmp_path: Path) -> None:
    folder = segment_folder(tmp_path, "predictions", "churn", T0)
    folder.mkdir(parents=True)
    old = pa.table(
        {
            "request_id": ["a"],
            "timestamp": pa.array([T0], pa.timestamp("us", tz="UTC")),
            "inputs": ["{}"],
        }
    )
    pq.write_table(old, folder / "part-old.parquet")
    with pytest.raises(InvalidArgumentError, match="lacks the columns row, version, status"):
        read_predictions("churn", root=tmp_path)


def test_a_sample_is_drawn_from_the_rows_in_range(tmp_path: Path) -> None:
    """DuckDB samples before it filters; a sample of a range must still hold ``sample`` rows."""
    for hour in range(2):
        start = T0 + timedelta(hours=hour)
        write_predictions(
            tmp_path, "churn", _inputs(2_000), timestamps=spread(start, 2_000, timedelta(hours=1)),
            predictions=[0] * 2_000,
        )  # fmt: skip
    quarter = {"start": T0 + timedelta(minutes=15), "end": T0 + timedelta(minutes=30)}
    assert read_predictions("churn", root=tmp_path, labels=False, **quarter).num_rows == 500
    sample = read_predictions("churn", root=tmp_path, labels=False, sample=400, **quarter)
    assert sample.num_rows == 400
    stamps = sample["timestamp"].to_pylist()
    assert min(stamps) >= quarter["start"] and max(stamps) < quarter["end"]


def test_a_sample_of_answered_requests_leaves_failures_out_first(tmp_path: Path) -> None:
    write_predictions(
        tmp_path, "churn", _inputs(50), timestamps=spread(T0, 50, timedelta(hours=1)),
        predictions=[0] * 50,
    )  # fmt: skip
    types = {"amount": pa.float64(), "plan": pa.string()}
    failures = spread(T0, 500, timedelta(hours=1))
    write_failures(tmp_path, "churn", timestamps=failures, input_types=types)
    sample = read_predictions("churn", root=tmp_path, sample=40, successful=True)
    assert sample.num_rows == 40 and sample["status"].to_pylist() == [200] * 40
    assert read_predictions("churn", root=tmp_path, successful=True).num_rows == 50


def test_labels_read_once_join_window_by_window_as_read_with_them(tmp_path: Path) -> None:
    hour = timedelta(hours=1)
    write_predictions(
        tmp_path, "churn", _inputs(4), timestamps=[T0, T0, T0 + timedelta(minutes=5), T0],
        predictions=[0, 1, 1, 0], request_ids=["a", "a", "b", "reused"], rows=[0, 1, 0, 0],
    )  # fmt: skip
    write_predictions(
        tmp_path, "churn", _inputs(3), timestamps=[T0 + hour, T0 + hour, T0 + 2 * hour],
        predictions=[1, 0, 1], request_ids=["reused", "c", "d"], written_at=T0 + hour,
    )  # fmt: skip
    write_feedback(
        tmp_path,
        [
            ("a", None, 1, T0 + timedelta(minutes=10)),
            ("a", 1, 0, T0 + timedelta(minutes=20)),  # row 1 corrected later
            ("a", 0, 0, T0 + timedelta(minutes=5)),  # older than the request-wide label
            ("b", 0, "yes", T0 + timedelta(minutes=30)),
            ("reused", None, 1, T0 + hour + timedelta(minutes=1)),
            ("zzz", 0, 1, T0),  # another model's request
        ],
    )
    write_feedback(tmp_path, [("c", 0, 0, T0 + 5 * hour), ("c", None, 1, T0 + 6 * hour)])
    labels = read_labels("churn", root=tmp_path, start=T0, end=T0 + 3 * hour)
    assert labels.num_rows == 6 and "zzz" not in labels["request_id"].to_pylist()
    for start in (T0, T0 + hour, T0 + 2 * hour, T0 + 3 * hour):
        window = {"start": start, "end": start + hour, "root": tmp_path}
        expected = read_predictions("churn", **window)
        joined = join_labels(read_predictions("churn", labels=False, **window), labels)
        assert joined.equals(expected, check_metadata=True), start
    first = join_labels(
        read_predictions("churn", labels=False, start=T0, end=T0 + hour, root=tmp_path), labels
    )
    assert first["label"].to_pylist() == ["1", "0", "1", '"yes"']  # mixed types: JSON text
    assert read_labels("churn", root=tmp_path, start=T0 + 9 * hour).num_rows == 0


def test_span_and_sample(tmp_path: Path) -> None:
    stamps = spread(T0, 500, timedelta(hours=3))
    write_predictions(tmp_path, "churn", _inputs(500), timestamps=stamps, predictions=[0] * 500)
    span = log_span("churn", root=tmp_path)
    assert (span.first, span.last, span.rows) == (stamps[0], stamps[-1], 500)
    sample = read_predictions("churn", root=tmp_path, sample=50, labels=False)
    assert sample.num_rows == 50
    assert len(set(sample["request_id"].to_pylist())) == 50
    with pytest.raises(InvalidArgumentError, match="positive"):
        read_predictions("churn", root=tmp_path, sample=0)


@pytest.mark.integration
def test_the_workspace_holds_the_log_by_default(home: Path) -> None:
    write_predictions(home, "churn", _inputs(2), timestamps=[T0, T0], predictions=[0, 1])
    assert read_predictions("churn").num_rows == 2
    assert read_predictions("churn", home=home).num_rows == 2
