"""A load generator run in its own process: requests until a stop file appears, then a JSON
summary of what came back (statuses, versions, transport errors)."""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

import httpx


def main(url: str, stop: str, out: str, rate: float) -> None:
    statuses: dict[str, int] = {}
    versions: dict[str, int] = {}
    retried = 0
    failed_transport = 0
    rng = random.Random(1)  # noqa: S311
    # A fresh connection per request, so that a worker that shuts down never has a keep-alive
    # connection of ours half-used.
    with httpx.Client(limits=httpx.Limits(max_keepalive_connections=0), timeout=30) as http:
        while not Path(stop).exists():
            started = time.perf_counter()
            body = {"inputs": [{"name": "score", "shape": [1], "datatype": "FP64",
                                "data": [rng.random()]}]}  # fmt: skip
            response = None
            for attempt in range(2):  # one retry when the connection was refused or reset
                try:
                    response = http.post(url, json=body)
                    break
                except httpx.TransportError:
                    if attempt == 0:
                        retried += 1
            if response is None:
                failed_transport += 1
            else:
                statuses[str(response.status_code)] = statuses.get(str(response.status_code), 0) + 1
                if response.status_code == 200:
                    version = response.json()["model_version"]
                    versions[version] = versions.get(version, 0) + 1
            pause = 1 / rate - (time.perf_counter() - started)
            if pause > 0:
                time.sleep(pause)
    summary = {"statuses": statuses, "versions": versions, "retried": retried,
               "failed_transport": failed_transport}  # fmt: skip
    Path(out).write_text(json.dumps(summary))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]))
