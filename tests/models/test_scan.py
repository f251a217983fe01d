"""scan_pickles reads opcodes only: it names what a pickle would import and never loads it."""

from __future__ import annotations

import os
import pickle
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

from shipyard.entities.data import Severity
from shipyard.models import scan_pickles
from shipyard.models.scan import is_pickle_file, scan_pickle_bytes


class RunsACommand:
    """Pickling this is harmless; unpickling it would run ``echo hi``. Tests never unpickle."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("echo hi",))


class CallsEval:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (eval, ("1 + 1",))


def malicious_bytes(protocol: int = pickle.DEFAULT_PROTOCOL) -> bytes:
    return pickle.dumps(RunsACommand(), protocol=protocol)


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_os_system_is_flagged_in_every_protocol(protocol: int) -> None:
    finding = scan_pickle_bytes(malicious_bytes(protocol))
    assert finding.severity is Severity.ERROR
    assert [imp.qualified_name for imp in finding.unsafe] == [f"{os.system.__module__}.system"]
    assert finding.error is None


def test_eval_is_flagged() -> None:
    finding = scan_pickle_bytes(pickle.dumps(CallsEval()))
    assert [(i.qualified_name, i.severity) for i in finding.imports] == [
        ("builtins.eval", Severity.ERROR)
    ]


def test_plain_data_and_numpy_are_harmless() -> None:
    data = {"a": [1, 2.5, "x"], "b": OrderedDict(c=np.arange(3)), "d": {1, 2}}
    finding = scan_pickle_bytes(pickle.dumps(data))
    assert finding.severity is Severity.INFO, finding.imports
    assert finding.unsafe == ()
    assert any(imp.module.startswith("numpy") for imp in finding.imports)


def test_unknown_module_is_a_warning() -> None:
    finding = scan_pickle_bytes(pickle.dumps(RunsACommand, protocol=4))
    assert finding.severity is Severity.WARNING
    assert finding.imports[0].qualified_name == f"{__name__}.RunsACommand"


def test_truncated_stream_reports_what_it_read() -> None:
    data = malicious_bytes()
    finding = scan_pickle_bytes(data[:-3])
    assert finding.error is not None
    assert finding.severity is Severity.ERROR


def test_folder_walk_finds_pickles_by_suffix_and_by_header(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "model.pkl").write_bytes(pickle.dumps({"w": 1}))
    (tmp_path / "sub" / "weights.bin").write_bytes(malicious_bytes())
    (tmp_path / "sub" / "state.joblib").write_bytes(pickle.dumps([1, 2]))
    (tmp_path / "notes.txt").write_text("no pickle here")
    (tmp_path / "model.skops").write_bytes(b"PK\x03\x04 not a pickle")

    findings = scan_pickles(tmp_path)
    assert [f.path for f in findings] == ["model.pkl", "sub/state.joblib", "sub/weights.bin"]
    assert [f.severity for f in findings] == [Severity.INFO, Severity.INFO, Severity.ERROR]
    assert findings[2].to_dict()["imports"][0]["severity"] == "error"
    assert is_pickle_file(tmp_path / "sub" / "weights.bin")
    assert not is_pickle_file(tmp_path / "notes.txt")


def test_a_single_file_can_be_scanned(tmp_path: Path) -> None:
    target = tmp_path / "x.pickle"
    target.write_bytes(malicious_bytes())
    assert [f.path for f in scan_pickles(target)] == ["x.pickle"]


def test_a_folder_without_pickles_gives_nothing(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text("{}")
    assert scan_pickles(tmp_path) == []


def test_pickles_inside_zip_archives_are_scanned(tmp_path: Path) -> None:
    """A torch.save-style archive hides its pickle in a member; the scan opens the zip."""
    import os
    import pickle
    import zipfile

    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, ("echo owned",))

    archive = tmp_path / "weights.pt"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps(Evil()))  # built, never loaded
        zf.writestr("archive/version", "3")
    findings = scan_pickles(tmp_path)
    assert [f.path for f in findings] == ["weights.pt!archive/data.pkl"]
    assert findings[0].severity.value == "error"
