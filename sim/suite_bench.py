"""``chord bench --suite``: the code-made task suite (assets.suite) benchmarked, judged by its ground truth.

Every task of the chosen split is planned from its ground-truth flow (the scene's reference flow,
or the user's flows with ``--flow-dir``) under the randomised trials of :mod:`sim.bench` (method
"ours" only: the suite measures the product, not the baselines), and each trial is judged against
the task's recorded ground truth (``reference.truth``) moved with the trial's perturbation. The
result is one table by category: tasks, trials, success rate, and failures by stage.

Files under OUT: the trial records and per-task outputs of :func:`sim.bench.run_bench`
(``results.jsonl``, resumable; ``summary.json``, ``table.txt``, ``success.png``), plus
``suite_bench.json`` (the table as JSON) and ``suite_table.txt``, both written atomically.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from assets.suite import CATEGORIES, SPLITS, IndexEntry, read_index
from core.atomic import write_text_atomic
from core.errors import ChordError
from sim.bench import BenchConfig, run_bench, summarise
from sim.evaluate import STAGES

SUITE_RECORD = "suite_bench.json"
SUITE_TABLE = "suite_table.txt"
SUITE_RECORD_SCHEMA = "chord.suite_bench"
# Failure columns of the table: the simulator's stages, then crashes of the planner or simulator
# (a trial record's cause "error": a bug, not a verdict).
FAILURE_COLUMNS = (*STAGES, "error")


@dataclass(frozen=True)
class SuiteSelection:
    """Which tasks of a suite to run: its folder, the split, the categories or tasks named in
    ``only``, and at most ``limit`` per category."""

    suite: Path  # the folder `chord assets suite --out` wrote (its suite.json)
    split: str = "all"  # "train", "test" or "all"
    limit: int | None = None  # at most this many tasks of each category (in seed order); None = every one
    only: tuple[str, ...] = ()  # categories ("knob") or task ids ("knob_003") to keep; () = every one

    def __post_init__(self) -> None:
        """Raises ChordError naming a bad split or limit."""
        if self.split not in (*SPLITS, "all"):
            raise ChordError(f"bench --split is {self.split!r}, expected train, test or all")
        if self.limit is not None and (
            isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 1
        ):
            raise ChordError(
                f"bench --limit is {self.limit!r}, expected an integer >= 1 (tasks per category)"
            )

    def entries(self) -> list[IndexEntry]:
        """The selected tasks of the suite's index, in index order.

        Raises ChordError for a missing or bad index, a split without tasks, or a listed task
        whose scene.yaml is missing.
        """
        entries = read_index(self.suite, self.split)
        if self.only:
            known = {e.category for e in entries} | {e.id for e in entries}
            unknown = [name for name in self.only if name not in known]
            if unknown:
                categories = sorted({e.category for e in entries})
                raise ChordError(
                    f"bench --only {' '.join(unknown)}: not a category or task id of the {self.split} "
                    f"tasks in {self.suite / 'suite.json'}; expected one of the categories {categories} "
                    f"or a task id such as {entries[0].id!r}"
                )
            entries = [e for e in entries if e.category in self.only or e.id in self.only]
        if self.limit is not None:
            seen: Counter[str] = Counter()
            kept = []
            for e in entries:
                seen[e.category] += 1
                if seen[e.category] <= self.limit:
                    kept.append(e)
            entries = kept
        if not entries:
            raise ChordError(
                f"bench --suite {self.suite}: no {self.split} tasks in its suite.json; "
                f"write them with chord assets suite --out {self.suite} --split {self.split}"
            )
        for e in entries:
            if not e.scene.is_file():
                raise ChordError(f"bench --suite: {e.scene} is listed in suite.json but missing")
        return entries


@dataclass(frozen=True)
class SuiteBenchResult:
    """What :func:`run_suite_bench` measured and wrote."""

    records: list[dict[str, Any]]  # every trial record (sim.bench.run_trial)
    rows: list[dict[str, Any]]  # by category, then "all" (suite_rows)
    table: str  # format_suite_table(rows)
    record_path: Path  # OUT/suite_bench.json
    table_path: Path  # OUT/suite_table.txt


def suite_rows(records: list[dict[str, Any]], categories: dict[str, str]) -> list[dict[str, Any]]:
    """One row per category (in assets.suite.CATEGORIES order) and a last row "all".

    ``categories``: task id -> category. Each row: category, tasks, trials, successes, rate (0..1),
    failures {column: count} over FAILURE_COLUMNS; failures add up to trials - successes (a cause
    outside the columns would be a bug of this module: raises ChordError naming it).
    """
    rows = []
    for category in (*CATEGORIES, "all"):
        rs = [r for r in records if category == "all" or categories.get(r["task"]) == category]
        if not rs:
            continue
        k = sum(bool(r["success"]) for r in rs)
        causes = Counter(r.get("cause") for r in rs if not r["success"])
        unknown = sorted(str(c) for c in causes if c not in FAILURE_COLUMNS)
        if unknown:
            raise ChordError(f"bench --suite: trial causes {unknown} are none of {list(FAILURE_COLUMNS)}")
        rows.append(
            {
                "category": category,
                "tasks": len({r["task"] for r in rs}),
                "trials": len(rs),
                "successes": k,
                "rate": k / len(rs),
                "failures": {c: causes.get(c, 0) for c in FAILURE_COLUMNS},
            }
        )
    return rows


# Where the planning flows came from, as the table's title and suite_bench.json say it.
FLOW_SOURCES = {
    "truth": "ground-truth flows",
    "user": "the user's flows (--flow-dir)",
    "generated": "flows the flow stage generated (--full)",
}


def format_suite_table(rows: list[dict[str, Any]], split: str, flows_from: str = "truth") -> str:
    """The table by category: tasks, trials, success rate, failures by stage (trial counts).

    ``flows_from``: a key of FLOW_SOURCES, named in the title.
    """
    head = f"{'category':<10}{'tasks':>6}{'trials':>8}{'success':>10}  " + "".join(
        f"{c:>10}" for c in FAILURE_COLUMNS
    )
    title = f"{split} split, planned from {FLOW_SOURCES[flows_from]}, judged by the ground truth"
    lines = [f"chord bench --suite ({title}; failures by stage)", head]
    for r in rows:
        if r["category"] == "all":
            lines.append("-" * len(head))
        lines.append(
            f"{r['category']:<10}{r['tasks']:>6}{r['trials']:>8}{100 * r['rate']:>9.0f}%  "
            + "".join(f"{r['failures'][c]:>10}" for c in FAILURE_COLUMNS)
        )
    return "\n".join(lines)


def run_suite_bench(
    selection: SuiteSelection,
    out: Path,  # output folder (results.jsonl and the rest; see the module docstring)
    config: BenchConfig = BenchConfig(),  # trials and randomisation; its methods become ("ours",)
    flows: dict[tuple[str, str], Path] | None = None,  # (task, "ours") -> flow.npz; None = ground-truth flows
    flows_from: str | None = None,  # a key of FLOW_SOURCES; None: "truth" without flows, else "user"
) -> SuiteBenchResult:
    """Run (or resume) the selected suite tasks and write the table by category.

    Raises ChordError for a bad selection (see SuiteSelection.entries), a task whose scene has no
    ground truth (reference.truth: the suite judges by it), and what sim.bench.run_bench raises
    (FolderBusyError when another bench holds OUT).
    """
    from core.scene import Scene

    flows_from = flows_from or ("truth" if flows is None else "user")
    if flows_from not in FLOW_SOURCES or (flows is None) != (flows_from == "truth"):
        raise ChordError(
            f"run_suite_bench: flows_from is {flows_from!r} with {'no' if flows is None else ''} flows given, "
            f"expected 'truth' without flows or one of {sorted(set(FLOW_SOURCES) - {'truth'})} with them"
        )
    entries = selection.entries()
    for e in entries:
        ref = Scene.load(e.scene).reference
        if ref is None or ref.truth is None:
            raise ChordError(f"bench --suite: {e.scene} names no ground truth (reference.truth)")
    config = replace(config, methods=("ours",))
    out = Path(out)
    records = run_bench([e.scene for e in entries], out, config, flows=flows)
    category = {e.id: e.category for e in entries}
    rows = suite_rows(records, category)
    table = format_suite_table(rows, selection.split, flows_from)
    doc = {
        "schema": SUITE_RECORD_SCHEMA,
        "version": 1,
        "suite": str(selection.suite),
        "split": selection.split,
        "limit": selection.limit,
        "judged_by": sorted({str(r.get("judged_by")) for r in records}),
        "planning_flows": flows_from,
        "config": asdict(config),
        "categories": rows,
        "tasks": [{**row, "category": category[row["task"]]} for row in summarise(records)],
    }
    record_path, table_path = out / SUITE_RECORD, out / SUITE_TABLE
    write_text_atomic(record_path, json.dumps(doc, indent=2) + "\n")
    write_text_atomic(table_path, table + "\n")
    return SuiteBenchResult(records, rows, table, record_path, table_path)
