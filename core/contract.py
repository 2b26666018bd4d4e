"""Shared machinery for the versioned ``.npz`` file contracts (flow.npz, plan.npz).

A contract file is an uncompressed ``.npz`` archive of plain arrays plus one ``meta`` entry: a
JSON document stored as a 0-d unicode array, with ``schema`` and ``version`` keys. Nothing is
ever pickled, and loading uses ``allow_pickle=False``.

Readers check everything before returning: schema and version, missing and unexpected fields,
dtypes, shapes (with named dimensions shared between fields), finiteness and monotone times. Each
failure raises :class:`~core.errors.ContractError` naming the file, the field and the value.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from core.atomic import atomic_write
from core.errors import ContractError

# A dimension in a shape spec: a fixed size, or a name bound by the first field that uses it.
Dim = int | str


class ArrayChecker:
    """Checks the arrays of one contract object, binding named dimensions across fields.

    ``path`` is only used in messages (``None`` for in-memory objects).
    """

    def __init__(self, path: str | Path | None = None):
        self.path = path
        self.dims: dict[str, int] = {}
        self._dim_source: dict[str, str] = {}

    def fail(self, field: str, message: str) -> ContractError:
        return ContractError(field, message, self.path)

    def array(
        self,
        field: str,
        value: Any,
        dtype: np.dtype | type,
        shape: tuple[Dim, ...],
        *,
        finite: bool = True,
    ) -> np.ndarray:
        """Return ``value`` as an array after checking its dtype (exactly), shape and finiteness."""
        if not isinstance(value, np.ndarray):
            raise self.fail(field, f"expected a numpy array, got {type(value).__name__}")
        want = np.dtype(dtype)
        if value.dtype != want:
            raise self.fail(field, f"dtype is {value.dtype}, expected {want}")
        if value.ndim != len(shape):
            raise self.fail(
                field,
                f"shape is {value.shape} ({value.ndim}-D), expected {self._shape_str(shape)} "
                f"({len(shape)}-D)",
            )
        for axis, (size, dim) in enumerate(zip(value.shape, shape, strict=True)):
            if isinstance(dim, int):
                if size != dim:
                    raise self.fail(
                        field,
                        f"shape is {value.shape}, expected {self._shape_str(shape)} "
                        f"(axis {axis} must be {dim})",
                    )
            elif dim in self.dims:
                if size != self.dims[dim]:
                    raise self.fail(
                        field,
                        f"shape is {value.shape}, expected {self._shape_str(shape)} with "
                        f"{dim}={self.dims[dim]} from {self._dim_source[dim]}",
                    )
            else:
                self.dims[dim] = size
                self._dim_source[dim] = field
        if finite and want.kind == "f" and value.size and not np.isfinite(value).all():
            bad = np.argwhere(~np.isfinite(value))[0]
            raise self.fail(
                field,
                f"holds a non-finite value {value[tuple(bad)].item()} at index {tuple(int(i) for i in bad)}",
            )
        return value

    def min_size(self, dim: str, minimum: int, what: str) -> None:
        """Require the named dimension to be at least ``minimum``."""
        if self.dims.get(dim, 0) < minimum:
            raise self.fail(
                self._dim_source.get(dim, dim),
                f"{what} is {self.dims.get(dim, 0)}, expected at least {minimum}",
            )

    def strictly_increasing(self, field: str, values: np.ndarray) -> None:
        if values.size >= 2:
            steps = np.diff(values)
            if not (steps > 0).all():
                i = int(np.argmax(steps <= 0))
                raise self.fail(
                    field,
                    f"must strictly increase, but {field}[{i}]={values[i].item()!r} and "
                    f"{field}[{i + 1}]={values[i + 1].item()!r}",
                )

    @staticmethod
    def _shape_str(shape: tuple[Dim, ...]) -> str:
        return "[" + ", ".join(str(d) for d in shape) + "]"


def write_npz(path: str | Path, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
    """Atomically write ``arrays`` plus the JSON ``meta`` to an uncompressed ``.npz`` at ``path``."""
    if "meta" in arrays:
        raise ValueError("'meta' is reserved for the JSON metadata entry")
    payload = dict(arrays)
    payload["meta"] = np.array(json.dumps(meta, sort_keys=True, allow_nan=False))
    with atomic_write(path) as f:
        np.savez(f, **payload)


def read_npz(
    path: str | Path,
    *,
    schema: str,
    versions: Iterable[int],
    required: Iterable[str],
    optional: Iterable[str] = (),
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a contract ``.npz``: returns its arrays (without ``meta``) and the parsed meta.

    Raises ContractError for a missing or unreadable file, pickled content, a missing or
    unexpected field, or a meta whose schema or version this reader does not know.
    """
    path = Path(path)
    if not path.is_file():
        raise ContractError("file", "does not exist" if not path.exists() else "is not a file", path)
    try:
        archive = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise ContractError("file", f"is not a readable .npz archive ({e})", path) from e
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ContractError("file", "holds a single .npy array, expected an .npz archive", path)
    arrays: dict[str, np.ndarray] = {}
    with archive:
        for key in archive.files:
            try:
                arrays[key] = archive[key]
            except ValueError as e:
                # allow_pickle=False refuses object arrays: never unpickle a file we did not write.
                raise ContractError(key, f"holds pickled Python objects, refused ({e})", path) from e
            except (zipfile.BadZipFile, OSError, EOFError) as e:
                raise ContractError(key, f"cannot be read, the archive is damaged ({e})", path) from e

    if "meta" not in arrays:
        raise ContractError("meta", "missing: not a chord contract file", path)
    meta = parse_meta(arrays.pop("meta"), path, schema=schema, versions=versions)

    required = list(required)
    missing = [k for k in required if k not in arrays]
    if missing:
        raise ContractError(missing[0], f"missing from the {schema} file (has {sorted(arrays)})", path)
    unexpected = sorted(set(arrays) - set(required) - set(optional))
    if unexpected:
        raise ContractError(
            unexpected[0],
            f"unexpected field; {schema} v{meta['version']} has {sorted([*required, *optional])}",
            path,
        )
    return arrays, meta


def parse_meta(
    raw: np.ndarray, path: str | Path | None, *, schema: str, versions: Iterable[int]
) -> dict[str, Any]:
    """Parse and check the ``meta`` entry: a 0-d string array holding a JSON object."""
    if raw.dtype.kind != "U" or raw.ndim != 0:
        raise ContractError("meta", f"expected a JSON string, got dtype {raw.dtype} shape {raw.shape}", path)
    try:
        meta = json.loads(str(raw))
    except json.JSONDecodeError as e:
        raise ContractError("meta", f"is not valid JSON ({e})", path) from e
    if not isinstance(meta, dict):
        raise ContractError("meta", f"expected a JSON object, got {type(meta).__name__}", path)
    if meta.get("schema") != schema:
        raise ContractError("meta.schema", f"is {meta.get('schema')!r}, expected {schema!r}", path)
    known = sorted(versions)
    version = meta.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version not in known:
        raise ContractError(
            "meta.version",
            f"is {version!r}; this reader knows {schema} version(s) {known} (a newer chord may read it)",
            path,
        )
    return meta


def require_meta(
    meta: Mapping[str, Any], key: str, types: type | tuple[type, ...], path: str | Path | None
) -> Any:
    """Return ``meta[key]`` after checking it is present and of the given JSON type(s)."""
    if key not in meta:
        raise ContractError(f"meta.{key}", "missing", path)
    value = meta[key]
    # JSON has no int/bool distinction that Python keeps: a bool is not a number here.
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise ContractError(f"meta.{key}", f"is {value!r}, expected {_type_names(types)}", path)
    if not isinstance(value, types):
        raise ContractError(
            f"meta.{key}", f"is {value!r} ({type(value).__name__}), expected {_type_names(types)}", path
        )
    return value


def _type_names(types: type | tuple[type, ...]) -> str:
    types = types if isinstance(types, tuple) else (types,)
    return " or ".join(t.__name__ for t in types)


def npz_schema(path: str | Path) -> Any:
    """Peek at an .npz file's meta.schema without validating the rest; raises ContractError."""
    path = Path(path)
    if not path.is_file():
        raise ContractError("file", "does not exist", path)
    try:
        with np.load(path, allow_pickle=False) as z:
            if "meta" not in z.files:
                raise ContractError("meta", "missing: not a chord contract file", path)
            raw = z["meta"]
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, AttributeError) as e:
        raise ContractError("file", f"is not a readable .npz archive ({e})", path) from e
    try:
        meta = json.loads(str(raw))
    except json.JSONDecodeError as e:
        raise ContractError("meta", f"is not valid JSON ({e})", path) from e
    if not isinstance(meta, dict):
        raise ContractError("meta", f"expected a JSON object, got {type(meta).__name__}", path)
    return meta.get("schema")
