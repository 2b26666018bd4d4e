"""Reading an .rrd back with rerun's own reader (``rerun.chunk.RrdReader``), for tests and summaries.

rerun 0.41 removed ``rr.dataframe.load_recording``; its chunk API is what reads files now.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ChordError


@dataclass
class EntityLog:
    """Everything logged to one entity: per component, the rows and their time stamps."""

    path: str  # entity path as rerun writes it, e.g. "/world/flow/banana"
    static: dict[str, Any] = field(default_factory=dict)  # component -> last static value (list)
    rows: dict[str, list[Any]] = field(default_factory=lambda: defaultdict(list))  # component -> values
    times: dict[str, dict[str, list[int]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(list))
    )  # component -> timeline -> stamps (sequence, or nanoseconds for durations)

    def components(self) -> set[str]:
        return set(self.static) | set(self.rows)

    def values(self, component: str) -> list[Any]:
        """Temporal rows of ``component`` sorted by their first timeline; static value if none."""
        if component in self.rows:
            stamps = next(iter(self.times[component].values()), None)
            vals = self.rows[component]
            if stamps is not None and len(stamps) == len(vals):
                return [vals[i] for i in np.argsort(stamps, kind="stable")]
            return vals
        if component in self.static:
            return [self.static[component]]
        raise KeyError(f"{self.path} has no component {component!r}; it has {sorted(self.components())}")

    def time_range(self, timeline: str) -> tuple[int, int]:
        """(min, max) stamp of this entity on ``timeline`` over all components."""
        stamps = [s for per in self.times.values() for s in per.get(timeline, [])]
        if not stamps:
            raise KeyError(f"{self.path} has nothing on timeline {timeline!r}")
        return min(stamps), max(stamps)


def read_recording(path: str | Path) -> dict[str, EntityLog]:
    """Entity path -> :class:`EntityLog` of every chunk in the first recording of ``path``.

    Component values are Python lists (``pyarrow`` ``to_pylist``): positions are lists of [x, y, z].
    Duration timelines are in nanoseconds. Raises ChordError for a missing or unreadable file.
    """
    from rerun.chunk import RrdReader

    path = Path(path)
    if not path.is_file():
        raise ChordError(f"rerun recording {str(path)!r} does not exist")
    try:
        chunks = list(RrdReader(path).stream())
    except (ValueError, OSError) as e:
        raise ChordError(f"rerun recording {str(path)!r} cannot be read: {e}") from e
    out: dict[str, EntityLog] = {}
    for chunk in chunks:
        batch = chunk.to_record_batch()
        ent = out.setdefault(chunk.entity_path, EntityLog(chunk.entity_path))
        kinds = {f.name: (f.metadata or {}).get(b"rerun:kind", b"").decode() for f in batch.schema}
        indexes = {n: batch.column(n) for n, k in kinds.items() if k == "index"}
        for name, kind in kinds.items():
            if kind != "data":
                continue
            col = batch.column(name).to_pylist()
            if chunk.is_static:
                ent.static[name] = col[-1]
                continue
            for i, v in enumerate(col):
                if v is None:
                    continue
                ent.rows[name].append(v)
                for tl, idx in indexes.items():
                    stamp = idx[i].value if hasattr(idx[i], "value") else idx[i].as_py()
                    ent.times[name][tl].append(int(stamp))
    return out
