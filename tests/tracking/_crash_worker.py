"""A training loop to be killed: ``python _crash_worker.py RUN_ID|new BASE [MODE]``.

It logs metrics as fast as it can and writes each step to stdout *after* the call returned
(one ``write()`` per line, so the test sees exactly what was acknowledged). The sink of the
metric buffer is wrapped to write ``B`` before and ``E`` after each batch to stderr, so that
the test can tell whether a kill landed during a write to the store. MODE ``after-commit``
kills the process right after the first batch is committed, before its journal segment is
deleted: the window in which replaying would duplicate metrics.
"""

from __future__ import annotations

import os
import signal
import sys
import time

import shipyard

run_id = None if sys.argv[1] == "new" else sys.argv[1]
base = int(sys.argv[2])
mode = sys.argv[3] if len(sys.argv) > 3 else "loop"

run = shipyard.start_run(experiment="crash", run_id=run_id, log_code=False)
buffer = run.workspace.metric_buffer
sink = buffer._sink


def marked(segments: object) -> object:
    os.write(2, b"B\n")
    result = sink(segments)  # type: ignore[arg-type]
    if mode == "after-commit":
        os.kill(os.getpid(), signal.SIGKILL)
    os.write(2, b"E\n")
    return result


buffer._sink = marked  # type: ignore[method-assign]
run.log_param(f"param{base}", "kept")
run.set_tag(f"tag{base}", "kept")
os.write(1, f"run {run.run_id}\n".encode())
step = base
while True:
    if step % 5 == 0:
        run.log_metrics({"loss": 1.0 / (step + 1), "acc": step / 1e9}, step=step)
    else:
        run.log_metric("loss", 1.0 / (step + 1), step=step)
    os.write(1, f"{step}\n".encode())
    step += 1
    if step % 10 == 0:
        time.sleep(0.0005)  # bursts, like a training loop, and a history the test can read
