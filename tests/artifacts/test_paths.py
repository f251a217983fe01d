from __future__ import annotations

import os
import posixpath
from pathlib import Path, PurePosixPath, PureWindowsPath

import pytest
from hypothesis import given

from shipyard.artifacts import resolve_inside, safe_relative_path
from shipyard.errors import InvalidArgumentError, UnsafePathError
from tests.strategies import hostile_paths, path_components, safe_paths


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("a", "a"),
        ("a/b/c.txt", "a/b/c.txt"),
        ("./a", "a"),
        ("a/./b", "a/b"),
        ("a//b///c", "a/b/c"),
        ("a/b/", "a/b"),
        ("a/.../b", "a/.../b"),
        ("..a/b..", "..a/b.."),
        ("a b/ü.txt", "a b/ü.txt"),
        ("ab:c/d:e", "ab:c/d:e"),
    ],
)
def test_safe_paths_are_normalised(path: str, expected: str) -> None:
    assert safe_relative_path(path) == expected


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("", "empty"),
        (".", "names no file"),
        ("./", "names no file"),
        ("/x", "absolute"),
        ("/etc/passwd", "absolute"),
        ("//server/share", "absolute"),
        ("..", "'..'"),
        ("../x", "'..'"),
        ("a/../../b", "'..'"),
        ("a/..", "'..'"),
        ("a/b/../c", "'..'"),
        ("C:\\x", "backslash"),
        ("C:x", "drive"),
        ("c:/x", "drive"),
        ("\\\\server\\share", "backslash"),
        ("a\\b", "backslash"),
        ("..\\x", "backslash"),
        ("a\x00b", "NUL"),
    ],
)
def test_unsafe_paths_are_refused_with_the_path_and_reason(path: str, reason: str) -> None:
    with pytest.raises(UnsafePathError) as error:
        safe_relative_path(path)
    assert repr(path) in str(error.value)
    assert reason in str(error.value)


def test_unsafe_path_error_is_an_invalid_argument() -> None:
    with pytest.raises(InvalidArgumentError):
        safe_relative_path("../x")


def test_non_string_is_refused() -> None:
    with pytest.raises(InvalidArgumentError):
        safe_relative_path(b"a")  # type: ignore[arg-type]


@given(hostile_paths)
def test_a_returned_path_never_escapes(path: str) -> None:
    try:
        clean = safe_relative_path(path)
    except UnsafePathError:
        return
    parts = clean.split("/")
    assert all(part not in ("", ".", "..") for part in parts)
    assert "\\" not in clean and "\x00" not in clean
    assert not PurePosixPath(clean).is_absolute()
    windows = PureWindowsPath(clean)
    assert not windows.drive and not windows.root
    root = "/srv/root"
    assert posixpath.normpath(posixpath.join(root, clean)).startswith(root + "/")
    assert safe_relative_path(clean) == clean


@given(safe_paths)
def test_safe_paths_come_back_unchanged(path: str) -> None:
    assert safe_relative_path(path) == path


@given(path_components, path_components)
def test_dots_and_extra_slashes_collapse(first: str, second: str) -> None:
    assert safe_relative_path(f"./{first}//./{second}/") == f"{first}/{second}"


def test_resolve_inside_returns_the_resolved_path(tmp_path: Path) -> None:
    assert resolve_inside(tmp_path, "a//b/./c.txt") == tmp_path.resolve() / "a" / "b" / "c.txt"


def test_resolve_inside_refuses_unsafe_paths(tmp_path: Path) -> None:
    for path in ["../x", "/etc/passwd", "a/../../b", "C:\\x", "a\x00b"]:
        with pytest.raises(UnsafePathError):
            resolve_inside(tmp_path, path)


def test_resolve_inside_refuses_a_symlink_pointing_out(tmp_path: Path) -> None:
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "link").symlink_to(outside)
    (root / "etc").symlink_to("/etc")
    with pytest.raises(UnsafePathError, match="link/x"):
        resolve_inside(root, "link/x")
    with pytest.raises(UnsafePathError):
        resolve_inside(root, "etc/passwd")


def test_resolve_inside_refuses_a_symlink_to_the_root_itself(tmp_path: Path) -> None:
    (tmp_path / "self").symlink_to(tmp_path)
    with pytest.raises(UnsafePathError):
        resolve_inside(tmp_path, "self")


def test_resolve_inside_allows_a_symlink_that_stays_inside(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "real")
    assert resolve_inside(tmp_path, "alias/f") == tmp_path.resolve() / "real" / "f"


def test_resolve_inside_works_when_the_root_is_reached_through_a_symlink(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "real", target_is_directory=True)
    assert resolve_inside(link, "f") == Path(os.path.realpath(tmp_path / "real")) / "f"
