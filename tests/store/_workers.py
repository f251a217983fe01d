"""Worker processes for the concurrency and crash tests (run as `python -m`)."""

from __future__ import annotations

import sys

import shipyard


def write_runs(worker: int, runs: int, metrics_per_run: int) -> None:
    """Log complete runs; print an ACK line after each one has ended."""
    for r in range(runs):
        with shipyard.start_run(
            experiment="parallel", name=f"w{worker}-r{r}", log_code=False
        ) as run:
            run.log_params({"worker": worker, "index": r})
            run.set_tag("kind", "load")
            for step in range(metrics_per_run):
                run.log_metric("loss", 1.0 / (step + 1), step=step)
                if step % 50 == 49:
                    run.flush()
        print(f"ACK {run.run_id} {metrics_per_run}", flush=True)


def log_until_killed() -> None:
    """Log forever; print what has been acknowledged so the parent can check it after kill -9."""
    run = shipyard.start_run(experiment="crash", name="victim", log_code=False)
    print(f"RUN {run.run_id}", flush=True)
    i = 0
    while True:
        run.log_param(f"p{i}", i)
        print(f"PARAM {i}", flush=True)
        run.set_tag("last", i)
        print(f"TAG {i}", flush=True)
        run.log_metric("m", float(i), step=i)
        if i % 10 == 9:
            run.flush()
            print(f"METRICS {i}", flush=True)
        i += 1


if __name__ == "__main__":
    if sys.argv[1] == "write":
        write_runs(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
    else:
        log_until_killed()
