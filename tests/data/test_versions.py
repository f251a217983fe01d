"""Dataset versions: content-addressed, numbered, deduplicated, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import shipyard
from shipyard import data
from shipyard.artifacts.packs import PACK_THRESHOLD
from shipyard.errors import ArtifactCorruptedError, InvalidArgumentError, NotFoundError
from tests._served import local_stores_only
from tests.data._files import settle

pytestmark = pytest.mark.integration


def _frame(rows: int = 50, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {"id": np.arange(rows), "x": rng.normal(size=rows), "city": ["a", "b"] * (rows // 2)}
    )


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _objects(home: Path) -> int:
    return sum(1 for p in (home / "artifacts" / "objects").rglob("*") if p.is_file())


def test_add_file_numbers_versions_and_deduplicates(home: Path, tmp_path: Path) -> None:
    csv = tmp_path / "churn.csv"
    _frame().to_csv(csv, index=False)
    first = data.add(csv, "churn")
    assert first.created and first.stored_bytes
    assert first.version.ref == "churn@1" and first.version.format == "csv"
    assert first.version.profile is not None and first.version.profile.rows == 50
    objects = _objects(home)
    again = data.add(csv, "churn")
    assert not again.created and not again.stored_bytes
    assert again.version.version == 1
    assert _objects(home) == objects  # no new bytes

    _frame(seed=1).to_csv(csv, index=False)
    second = data.add(csv, "churn")
    assert second.version.ref == "churn@2"
    for ref in ("churn@2", "churn@latest", "churn", f"churn@{second.version.digest[:8]}"):
        assert data.resolve(ref).version == 2
    assert data.resolve("churn@1").digest == first.version.digest

    pointer = json.loads((tmp_path / "churn.csv.ship").read_text())
    assert pointer["dataset"] == "churn" and pointer["version"] == 2
    assert pointer["digest"] == second.version.digest


def test_add_folder_and_identical_content_under_another_name(home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "images"
    (folder / "cats").mkdir(parents=True)
    for i in range(3):
        (folder / "cats" / f"{i}.bin").write_bytes(os.urandom(64))
    (folder / "readme.txt").write_text("hello")
    added = data.add(folder, "images")
    assert added.version.kind == "dir" and added.version.file_count == 4
    assert (tmp_path / "images.ship").is_file()
    same = data.add(folder, "images-copy")
    assert same.created and not same.stored_bytes  # a new dataset, but no new bytes


def test_add_dataframe_and_arrow(home: Path) -> None:
    frame = _frame()
    first = data.add(frame, "frame")
    assert first.version.format == "parquet" and first.pointer is None
    assert not data.add(frame, "frame").created  # same table -> same bytes
    arrow = data.add(pa.Table.from_pandas(_frame(seed=2)), "frame")
    assert arrow.version.version == 2
    loaded = data.load("frame@1")
    pd.testing.assert_frame_equal(loaded, frame)


@pytest.mark.parametrize(
    ("make", "name", "error", "message"),
    [
        (lambda p: p / "nope.csv", "n", NotFoundError, "no such file"),
        (lambda p: _write(p / "empty.csv", ""), "n", InvalidArgumentError, "is empty"),
        (lambda p: _write(p / "bad.csv", 'a,b\n1,2\n3\n"x'), "n", InvalidArgumentError, "bad.csv"),
        (
            lambda p: _write(p / "ok.csv", "a\n1\n"),
            "bad name!",
            InvalidArgumentError,
            "invalid dataset name",
        ),
        (lambda p: (p / "d").mkdir() or p / "d", "n", InvalidArgumentError, "holds no files"),
    ],
)
def test_bad_input_is_one_clear_error_and_writes_nothing(
    home: Path, tmp_path: Path, make: object, name: str, error: type, message: str
) -> None:
    path = make(tmp_path)  # type: ignore[operator]
    with pytest.raises(error, match=message):
        data.add(path, name)
    assert not list(tmp_path.glob("*.ship"))
    backend = shipyard.open_workspace().backend
    assert backend.list_datasets() == []


def test_unknown_versions_and_refs(home: Path, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a")
    data.add(tmp_path / "a.txt", "a")
    with pytest.raises(NotFoundError, match="no version '7'"):
        data.resolve("a@7")
    with pytest.raises(NotFoundError, match="no dataset named 'b'"):
        data.resolve("b@1")
    with pytest.raises(InvalidArgumentError, match="digest prefix"):
        data.resolve("a@zz!")
    with pytest.raises(InvalidArgumentError, match="give a version"):
        data.resolve("a@")


def test_get_materialises_with_links_or_copies(home: Path, tmp_path: Path, store_url: str) -> None:
    local_stores_only(store_url, "hard links need the object store on this machine's disk")
    folder = tmp_path / "src"
    (folder / "sub").mkdir(parents=True)
    payload = os.urandom(PACK_THRESHOLD)  # a file of its own in the store (not packed)
    (folder / "sub" / "f.bin").write_bytes(payload)
    (folder / "small.txt").write_bytes(b"packed")
    data.add(folder, "tree")
    linked = data.get("tree@1", tmp_path / "out-link", link=True)
    copied = data.get("tree@1", tmp_path / "out-copy")
    assert (linked / "sub" / "f.bin").read_bytes() == payload
    assert (linked / "sub" / "f.bin").stat().st_nlink >= 2  # shares the store's inode
    assert (copied / "sub" / "f.bin").stat().st_nlink == 1  # a private copy by default
    assert (linked / "small.txt").read_bytes() == b"packed"  # a packed object is copied
    assert (linked / "small.txt").stat().st_nlink == 1
    data.get("tree@1", tmp_path / "out-link", link=True)  # again, onto the same links
    assert not list((tmp_path / "out-link").rglob(".shipyard-*"))
    with pytest.raises(InvalidArgumentError, match="must be a folder"):
        data.get("tree@1", tmp_path / "src" / "sub" / "f.bin")


def test_link_mode_does_not_copy_and_protects_the_file(
    home: Path, tmp_path: Path, store_url: str
) -> None:
    local_stores_only(store_url, "hard links need the object store on this machine's disk")
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(2 << 20))
    added = data.add(big, "big", link=True)
    assert big.stat().st_nlink == 2
    assert big.stat().st_mode & 0o222 == 0  # read-only now
    assert shipyard.open_workspace().artifacts.read_bytes(added.version.digest) == big.read_bytes()


def test_runs_record_what_they_read_and_wrote(home: Path, tmp_path: Path) -> None:
    data.add(_frame(), "raw")
    with shipyard.start_run(experiment="prep", log_code=False) as run:
        frame = data.load("raw@1")
        frame["y"] = frame["x"] * 2
        derived = data.add(frame, "features").version
    assert derived.run_id == run.run_id
    found = data.lineage("raw@1")
    assert found.used_by == [run.run_id]
    assert [(r, v.ref) for r, v in found.derived] == [(run.run_id, "features@1")]
    assert data.lineage("features@1").produced_by == [run.run_id]
    with shipyard.start_run(experiment="train", log_code=False) as train:
        train.use_dataset("features", 1)
    assert data.lineage("features@1").used_by == [train.run_id]


def test_diff_folders_and_tables(home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "keep.txt").write_text("same")
    (folder / "change.txt").write_text("v1")
    (folder / "gone.txt").write_text("bye")
    data.add(folder, "f")
    (folder / "change.txt").write_text("v2")
    (folder / "gone.txt").unlink()
    (folder / "new.txt").write_text("hi")
    data.add(folder, "f")
    result = data.diff("f@1", "f@2")
    assert (result.files_added, result.files_removed, result.files_changed) == (
        ["new.txt"],
        ["gone.txt"],
        ["change.txt"],
    )

    old = _frame(rows=40)
    new = _frame(rows=60).drop(columns=["city"]).assign(extra=1.0)
    new.loc[0, "x"] = None
    data.add(old, "t")
    data.add(new, "t")
    table = data.diff("t@1", "t@2")
    assert table.rows == (40, 60)
    assert table.columns_added == ["extra"] and table.columns_removed == ["city"]
    assert "null_share" in table.stat_changes["x"]
    assert data.diff("t@1", "t@1").same_content


def test_a_corrupted_linked_object_is_stored_afresh(
    home: Path, tmp_path: Path, store_url: str
) -> None:
    local_stores_only(store_url, "hard links need the object store on this machine's disk")
    data.add(_frame(), "t")
    out = data.get("t@1", tmp_path / "out", link=True)
    original = out.read_bytes()
    os.chmod(out, 0o644)
    out.write_bytes(b"written in place through the link")  # what root could do
    with pytest.raises(ArtifactCorruptedError):
        data.get("t@1", tmp_path / "again")
    source = tmp_path / "original.parquet"
    source.write_bytes(original)
    result = data.add(source, "t")
    assert not result.created and result.stored_bytes  # same version, bytes stored again
    assert data.get("t@1", tmp_path / "fixed").read_bytes() == original


def test_link_mode_status_needs_no_rehash(home: Path, tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(1 << 20))
    settle(big)
    data.add(big, "big", link=True)
    assert [r.hashed for r in data.status([big])] == [0]


def test_refused_empty_folder_writes_no_object(home: Path, tmp_path: Path) -> None:
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(InvalidArgumentError, match="holds no files"):
        data.add(tmp_path / "empty", "e")
    objects = home / "artifacts" / "objects"
    assert not objects.exists() or not any(p.is_file() for p in objects.rglob("*"))


def test_all_digit_refs(home: Path, tmp_path: Path) -> None:
    for i in range(3):
        (tmp_path / "f.txt").write_text(str(i))
        data.add(tmp_path / "f.txt", "d")
    assert data.resolve("d@2").version == 2
    with pytest.raises(NotFoundError, match="no version '1234'"):
        data.resolve("d@1234")  # up to 6 digits: a version number
    with pytest.raises(NotFoundError, match="no version '1234567'"):
        data.resolve("d@1234567")  # 7+ digits: a digest prefix (none matches)


def test_load_keeps_the_separator_of_a_tsv(home: Path, tmp_path: Path) -> None:
    tsv = tmp_path / "t.tsv"
    tsv.write_text("a\tb\n1\t2\n")
    data.add(tsv, "tsv")
    assert list(data.load("tsv").columns) == ["a", "b"]


def test_a_run_that_re_adds_existing_content_still_produced_it(home: Path) -> None:
    data.add(_frame(), "t")
    with shipyard.start_run(experiment="e", log_code=False) as run:
        again = data.add(_frame(), "t")
        data.get("t@1", home.parent / "out")
    assert not again.created
    found = data.lineage("t@1")
    assert found.produced_by == [run.run_id] and found.used_by == [run.run_id]


def test_the_workspace_itself_cannot_be_added(home: Path) -> None:
    (home.parent / "data.txt").write_text("x")
    with pytest.raises(InvalidArgumentError, match="Shipyard workspace"):
        data.add(home.parent, "everything")  # the project folder holds .shipyard/
    with pytest.raises(InvalidArgumentError, match="Shipyard workspace"):
        data.add(home, "store")
