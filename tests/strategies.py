"""Hypothesis strategies shared by the test suite (one place, as STYLE.md asks)."""

from __future__ import annotations

import re

from hypothesis import strategies as st

from shipyard.artifacts import Manifest, ManifestEntry

_DRIVE = re.compile(r"[A-Za-z]:")

#: One portable file or folder name: no separators, NUL, '.', '..' or drive prefix.
path_components = st.text(
    alphabet=st.characters(exclude_characters="/\\\x00", exclude_categories=["Cs"]),
    min_size=1,
    max_size=12,
).filter(lambda name: name not in (".", "..") and not _DRIVE.match(name))

#: A normalised safe relative path such as ``"a/b.txt"``.
safe_paths = st.lists(path_components, min_size=1, max_size=4).map("/".join)

#: Anything a user might type as a path, including separators, dots, drives and NULs.
hostile_paths = st.lists(
    st.one_of(
        path_components,
        st.sampled_from(["", ".", "..", "/", "\\", "C:", "c:\\", "\x00", "~", "//"]),
    ),
    max_size=6,
).map(lambda parts: "/".join(parts))

digests = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)

sizes = st.integers(min_value=0, max_value=2**53)


def _without_folder_clashes(paths: dict[str, tuple[str, int]]) -> list[ManifestEntry]:
    keep = []
    for path, (digest, size) in paths.items():
        parts = path.split("/")
        if any("/".join(parts[:depth]) in paths for depth in range(1, len(parts))):
            continue
        keep.append(ManifestEntry(path=path, digest=digest, size=size))
    return keep


#: A valid manifest (no duplicate paths, no file that is also a folder).
manifests = st.dictionaries(safe_paths, st.tuples(digests, sizes), max_size=8).map(
    lambda paths: Manifest(tuple(_without_folder_clashes(paths)))
)


#: A sample for a two-sample drift statistic: 1-300 finite floats, often with ties.
drift_samples = st.lists(
    st.one_of(
        st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False),
        st.integers(min_value=-5, max_value=5).map(float),
    ),
    min_size=1,
    max_size=300,
)

#: Counts of values in 1-12 bins, at least one of them non-zero.
bin_counts = st.lists(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=12).filter(
    lambda counts: sum(counts) > 0
)

#: Two count vectors over the same 2-12 bins (reference, current), neither all zero.
paired_bin_counts = st.integers(min_value=2, max_value=12).flatmap(
    lambda k: st.tuples(
        st.lists(st.integers(0, 10_000), min_size=k, max_size=k),
        st.lists(st.integers(0, 10_000), min_size=k, max_size=k),
    ).filter(lambda pair: sum(pair[0]) > 0 and sum(pair[1]) > 0)
)

#: p-values in [0, 1], as many as a report has columns.
p_value_lists = st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=0, max_size=60)
