"""Success, planning time and plan duration by arm and task, from `chord bench` output folders.

Each folder is one `chord bench ... --robot NAME --out DIR` run (its results.jsonl); the arm is
read from the records, and folders of one arm (the task scenes, the suite) share its columns.
Prints a markdown table: per task, successes / trials, the median planning time and the median
plan duration, one column group per arm.

    chord bench --out B_panda --trials 8 --methods ours --robot panda
    chord bench --out B_ur5 --trials 8 --methods ours --robot ur5
    python benchmarks/arms.py B_panda B_ur5
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path


def load(folder: Path) -> tuple[str, dict[str, list[dict]]]:
    """(robot, {task: records}) of one bench folder's results.jsonl."""
    path = folder / "results.jsonl"
    if not path.is_file():
        raise SystemExit(f"{path} does not exist: give `chord bench --out` folders")
    by_task: dict[str, list[dict]] = defaultdict(list)
    robots = set()
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        r = json.loads(line)
        robots.add(r.get("robot", "panda"))
        by_task[r["task"]].append(r)
    if len(robots) != 1:
        raise SystemExit(f"{path}: records of {sorted(robots)}, expected one robot per folder")
    return robots.pop(), by_task


def _median(values: list[float]) -> str:
    return f"{statistics.median(values):.1f}" if values else "-"


def cell(records: list[dict]) -> str:
    ok = sum(bool(r.get("success")) for r in records)
    plan_s = [r["planning_time_s"] for r in records if r.get("planning_time_s") is not None]
    dur_s = [r["plan_duration_s"] for r in records if r.get("plan_duration_s") is not None]
    return f"{ok}/{len(records)} | {_median(plan_s)} | {_median(dur_s)}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="+", type=Path)
    args = ap.parse_args()
    runs: list[tuple[str, dict[str, list[dict]]]] = []
    for robot, by_task in (load(f) for f in args.folders):
        mine = next((by for r, by in runs if r == robot), None)
        if mine is None:
            runs.append((robot, dict(by_task)))
            continue
        for task, records in by_task.items():
            if task in mine:
                raise SystemExit(f"task {task} of {robot} is in two folders")
            mine[task] = records
    tasks = sorted({t for _, by in runs for t in by})
    head = "| task | " + " | ".join(f"{robot}: success | plan s | duration s" for robot, _ in runs) + " |"
    print(head)
    print("|---|" + "---|---|---|" * len(runs))
    for task in tasks:
        print(f"| {task} | " + " | ".join(cell(by.get(task, [])) for _, by in runs) + " |")
    totals = []
    for _, by in runs:
        records = [r for rs in by.values() for r in rs]
        totals.append(cell(records))
    print("| all | " + " | ".join(totals) + " |")


if __name__ == "__main__":
    main()
