"""The run records: what a run folder says about how its outputs were made, typed and versioned.

Two records, one reader and one writer each:

- :class:`RunRecord`, ``OUT/config.json`` of a ``chord flow`` run (schema ``chord.run`` v1): the
  scene, the resolved flow config, the prior and its own settings, the prior's inputs (video,
  masks, depth, Wan folder and options) and how many processes ran it. ``chord flow --resume``,
  ``chord bench --full``, ``chord run`` and ``chord view`` read it.
- :class:`PlanRecord`, ``plan.config.json`` beside a ``plan.npz`` (schema ``chord.plan_config``
  v1): the resolved planner config and the flow and scene the plan was made from.

The flow config is stored as the JSON dict ``flowgen.config.FlowConfig.to_dict`` gives: the
type belongs to the flow stage, this shared module only guarantees the record's frame. Readers
refuse a file of another schema, an unknown version, a missing or mistyped field, and a record
written before records were versioned, with a message that says what to do.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.atomic import write_text_atomic
from core.contract import read_json_file
from core.errors import ContractError

RUN_SCHEMA = "chord.run"
RUN_VERSION = 1
RUN_FILE = "config.json"
PLAN_RECORD_SCHEMA = "chord.plan_config"
PLAN_RECORD_VERSION = 1
MAX_RECORD_BYTES = 16 * 1024 * 1024  # a record is a few kB; a larger file is not one


def _read_json(path: Path) -> dict[str, Any]:
    doc = read_json_file(
        path, max_bytes=MAX_RECORD_BYTES, what="a run record"
    )  # size and nesting checked first
    if not isinstance(doc, dict):
        raise ContractError("file", f"holds a JSON {type(doc).__name__}, expected an object", path)
    return doc


def _check_schema(doc: dict[str, Any], path: Path, schema: str, version: int, what: str) -> None:
    if "schema" not in doc:
        raise ContractError(
            "schema",
            f"missing: this {what} was written before run records were versioned (chord 0.1.0 of "
            f"2026-11); its outputs can still be read, but make the run again to resume or reuse it",
            path,
        )
    if doc["schema"] != schema:
        raise ContractError("schema", f"is {doc['schema']!r}, expected {schema!r}", path)
    if doc.get("version") != version:
        raise ContractError(
            "version", f"is {doc.get('version')!r}; this reader knows {schema} version {version}", path
        )


def _field(doc: dict[str, Any], key: str, kind: type, path: Path) -> Any:
    if key not in doc:
        raise ContractError(key, "missing", path)
    value = doc[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ContractError(key, f"is {value!r} ({type(value).__name__}), expected {kind.__name__}", path)
    return value


@dataclass(frozen=True)
class RunRecord:
    """``config.json`` of a ``chord flow`` run folder."""

    scene: Path  # the scene spec the run was made for (as given, absolute or relative to the caller)
    prior: str  # the motion prior's name: "video" or "wan"
    config: dict[str, Any]  # the resolved FlowConfig, as FlowConfig.to_dict() gives it
    prior_settings: dict[str, Any] = field(default_factory=dict)  # the prior's own config, JSON values
    inputs: dict[str, Any] = field(default_factory=dict)  # the prior's input files and options
    processes: int = 1  # processes that ran the optimisation (torchrun world size)
    chord_version: str = ""  # version of chord that wrote the record

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": RUN_SCHEMA,
            "version": RUN_VERSION,
            "scene": str(self.scene),
            "prior": self.prior,
            "config": self.config,
            "prior_settings": self.prior_settings,
            "inputs": self.inputs,
            "processes": self.processes,
            "chord_version": self.chord_version,
        }

    def save(self, folder: str | Path) -> Path:
        """Write ``folder/config.json`` atomically; returns its path."""
        path = Path(folder) / RUN_FILE
        write_text_atomic(path, json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")
        return path

    @classmethod
    def load(cls, folder: str | Path) -> RunRecord:
        """Read ``folder/config.json``; raises ContractError naming the file, field and value."""
        path = Path(folder) / RUN_FILE
        doc = _read_json(path)
        _check_schema(doc, path, RUN_SCHEMA, RUN_VERSION, "run record")
        known = {
            "schema",
            "version",
            "scene",
            "prior",
            "config",
            "prior_settings",
            "inputs",
            "processes",
            "chord_version",
        }
        unknown = sorted(set(doc) - known)
        if unknown:
            raise ContractError("file", f"has unknown field(s) {unknown}", path)
        processes = _field(doc, "processes", int, path)
        if processes < 1:
            raise ContractError("processes", f"is {processes}, expected at least 1", path)
        return cls(
            scene=Path(_field(doc, "scene", str, path)),
            prior=_field(doc, "prior", str, path),
            config=_field(doc, "config", dict, path),
            prior_settings=_field(doc, "prior_settings", dict, path),
            inputs=_field(doc, "inputs", dict, path),
            processes=processes,
            chord_version=_field(doc, "chord_version", str, path),
        )

    @staticmethod
    def exists(folder: str | Path) -> bool:
        """Whether ``folder`` holds a run record (of any version: ``load`` judges it)."""
        return (Path(folder) / RUN_FILE).is_file()


@dataclass(frozen=True)
class PlanRecord:
    """``<plan>.config.json`` beside a plan: the resolved planner config and the plan's inputs."""

    config: dict[str, Any]  # the resolved PlannerConfig as JSON values
    flow: Path  # the flow.npz the plan was made from
    scene: Path | None = None  # the scene spec, when one was given

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": PLAN_RECORD_SCHEMA,
            "version": PLAN_RECORD_VERSION,
            "config": self.config,
            "flow": str(self.flow),
            "scene": None if self.scene is None else str(self.scene),
        }

    def save(self, plan_path: str | Path) -> Path:
        """Write the record beside ``plan_path`` (same name, suffix ``.config.json``), atomically."""
        path = record_path(plan_path)
        write_text_atomic(path, json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> PlanRecord:
        """Read a ``*.config.json`` plan record; raises ContractError naming the file, field and value."""
        path = Path(path)
        doc = _read_json(path)
        _check_schema(doc, path, PLAN_RECORD_SCHEMA, PLAN_RECORD_VERSION, "plan record")
        scene = doc.get("scene")
        if scene is not None and not isinstance(scene, str):
            raise ContractError("scene", f"is {scene!r}, expected a path string or null", path)
        return cls(
            config=_field(doc, "config", dict, path),
            flow=Path(_field(doc, "flow", str, path)),
            scene=None if scene is None else Path(scene),
        )


def record_path(plan_path: str | Path) -> Path:
    """The plan record's path beside ``plan_path``: ``runs/x/plan.npz`` -> ``runs/x/plan.config.json``."""
    return Path(plan_path).with_suffix(".config.json")
