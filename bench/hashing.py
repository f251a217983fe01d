"""How close does hashing and storing a big file come to just reading it?

Writes a random file (or uses ``--path``), reads it once to warm the page cache, then times:

* a plain sequential read (``readinto`` a reused 8 MiB buffer): the floor;
* ``hash_file`` (BLAKE3, memory-mapped, all cores);
* ``ArtifactStore.put_file`` into a fresh local store (hash, copy, hash the copy, fsync);
* ``ArtifactStore.get_file`` back out of it (copy, verify).

Run: ``.venv/bin/python bench/hashing.py [--size-mb 1024] [--repeat 3] [--path FILE]``
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from shipyard.artifacts import ArtifactStore, hash_file

CHUNK = 8 << 20


def write_random_file(path: Path, size: int) -> None:
    """Write ``size`` random bytes to ``path`` (random so that nothing can compress it)."""
    block = os.urandom(CHUNK)
    with open(path, "wb") as file:
        remaining = size
        while remaining > 0:
            # Vary each block a little so no two 8 MiB blocks are identical.
            piece = os.urandom(16) + block[16 : min(CHUNK, remaining)]
            file.write(piece[:remaining])
            remaining -= len(piece)


def read_all(path: Path) -> int:
    """Read ``path`` sequentially into a reused buffer; return the byte count."""
    buffer = bytearray(CHUNK)
    total = 0
    with open(path, "rb", buffering=0) as file:
        while count := file.readinto(buffer):
            total += count
    return total


def best_of(repeat: int, action: Callable[[], object], reset: Callable[[], None] | None) -> float:
    """Return the fastest of ``repeat`` timings of ``action``, calling ``reset`` before each."""
    timings = []
    for _ in range(repeat):
        if reset is not None:
            reset()
        start = time.perf_counter()
        action()
        timings.append(time.perf_counter() - start)
    return min(timings)


def main() -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024, help="file size in MiB")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measure (best kept)")
    parser.add_argument("--path", type=Path, help="file to use instead of a new random one")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="shipyard-bench-"))
    try:
        if args.path is not None:
            source = args.path
        else:
            source = workdir / "random.bin"
            write_random_file(source, args.size_mb << 20)
        size = source.stat().st_size
        read_all(source)  # warm the page cache

        store_root = workdir / "store"
        out = workdir / "out.bin"

        def fresh_store() -> None:
            shutil.rmtree(store_root, ignore_errors=True)

        read_time = best_of(args.repeat, lambda: read_all(source), None)
        hash_time = best_of(args.repeat, lambda: hash_file(source), None)
        put_time = best_of(
            args.repeat, lambda: ArtifactStore(store_root).put_file(source), fresh_store
        )
        digest = ArtifactStore(store_root).put_file(source).digest
        dedup_time = best_of(args.repeat, lambda: ArtifactStore(store_root).put_file(source), None)
        get_time = best_of(
            args.repeat,
            lambda: ArtifactStore(store_root).get_file(digest, out),
            lambda: out.unlink(missing_ok=True),
        )

        gb = size / 1e9
        print(
            f"{size / (1 << 20):.0f} MiB, page cache warm, best of {args.repeat}, "
            f"{os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.system()}"
        )
        print(f"{'measure':<34}{'seconds':>9}{'GB/s':>8}{'x read':>8}")
        rows = [
            ("sequential read (readinto 8 MiB)", read_time),
            ("hash_file (BLAKE3, mmap, threads)", hash_time),
            ("put_file, new object", put_time),
            ("put_file, already stored", dedup_time),
            ("get_file (copy + verify)", get_time),
        ]
        for name, seconds in rows:
            print(f"{name:<34}{seconds:>9.3f}{gb / seconds:>8.2f}{seconds / read_time:>8.2f}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
