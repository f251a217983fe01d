"""How long each stage of ``shipyard demo`` takes here, and the alert-to-promotion time.

Runs ``shipyard demo --json`` ROUNDS times, each in a fresh temporary workspace and a fresh
process (imports included, as a user sees it), and prints each stage's median and the
spread. Target (issue: continuous training): the whole demo under 3 minutes on these 2-core
machines. The alert-to-promotion time runs from the moment the drift alert is stored to the
canary's promotion recorded by the automation: new data added, the pipeline (a 6-trial
study), the gate against the champion, an approval and a two-step canary of 4 s steps.

Run: ``.venv/bin/python bench/demo_stages.py [--rounds 3] [--json PATH]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

TARGET_S = 180.0


def one_round() -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="shipyard-demo-bench-") as folder:
        done = subprocess.run(
            [sys.executable, "-m", "shipyard.cli", "demo", "--workspace", f"{folder}/w", "--json"],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"the demo failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
        summary = json.loads(done.stdout[done.stdout.rindex('{\n  "project"') :])
        timings: dict[str, float] = dict(summary["timings"])
        timings["alert to promoted canary"] = summary["alert_to_promotion_s"]
        return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    rounds = [one_round() for _ in range(args.rounds)]
    print(f"{'stage':<40} {'median s':>9} {'min':>7} {'max':>7}")
    for stage in rounds[0]:
        values = [r[stage] for r in rounds]
        print(
            f"{stage:<40} {statistics.median(values):>9.2f} {min(values):>7.2f} {max(values):>7.2f}"
        )
    total = statistics.median(r["total"] for r in rounds)
    verdict = "PASS" if total < TARGET_S else "MISS"
    print(f"\nwhole demo: median {total:.1f} s, target < {TARGET_S:.0f} s: {verdict}")
    if args.json is not None:
        args.json.write_text(json.dumps(rounds, indent=2))


if __name__ == "__main__":
    main()
