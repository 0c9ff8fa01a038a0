"""`scpo report runs/<run>`: tables and plots of a run (a loop run, or an `scpo grpo` output folder).

Reads only the stage files. A loop run (iter_<t>/ folders) gets report.md, metrics.png and
calibration.png (scpo/reporting/runs.py); a GRPO output folder (grpo_log.jsonl) gets report.md and
grpo_metrics.png (scpo/reporting/grpo.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

from scpo.core.errors import ScpoError
from scpo.reporting import grpo, runs


def main(argv: list[str]) -> str:
    if len(argv) != 1 or argv[0].startswith("-"):
        raise ScpoError("usage: scpo report runs/<run>")
    run_dir = Path(argv[0])
    if not run_dir.is_dir():
        raise ScpoError(f"{run_dir}: no such run directory")
    if grpo.is_grpo_run(run_dir):  # an `scpo grpo` output folder: per-step table of the online run
        return grpo.report(run_dir)
    rows = runs.collect(run_dir)
    for bad in runs.unreadable(rows):
        print(f"[report] could not read {bad}: its cells show -", file=sys.stderr)
    plots = runs.plot(rows, run_dir)
    return runs.write_report(run_dir, runs.markdown(rows, run_dir, plots))
