"""Shared machinery for the versioned ``.npz`` file contracts (flow.npz, plan.npz).

A contract file is an uncompressed ``.npz`` archive of plain arrays plus one ``meta`` entry: a
JSON document stored as a 0-d unicode array, with ``schema`` and ``version`` keys. Nothing is
ever pickled, and loading uses ``allow_pickle=False``.

Readers check everything before returning: schema and version, missing and unexpected fields,
dtypes, shapes (with named dimensions shared between fields), finiteness and monotone times. Each
failure raises :class:`~core.errors.ContractError` naming the file, the field and the value.

Before any array is allocated, :func:`inspect_npz` reads the archive's zip directory and each
member's ``.npy`` header: a member that would expand past ``MAX_NPZ_BYTES`` (a zip bomb), a header
whose shape and dtype disagree with the bytes the member holds (a forged header asking for TiB),
too many members, or an object (pickle) dtype is refused with the numbers. JSON read from a
contract (``meta``) or a record is limited in size and nesting depth (:func:`load_json_text`), so
a hostile document gives one line, never a ``RecursionError`` or ``MemoryError``.
"""

from __future__ import annotations

import json
import math
import re
import stat
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from core.atomic import atomic_write
from core.errors import ContractError

# A dimension in a shape spec: a fixed size, or a name bound by the first field that uses it.
Dim = int | str

# Limits on what a contract file may ask a reader to allocate. A flow of 1M points over 200 frames
# is 2.4 GB of float32; chord's own files are megabytes. Larger is a damaged or hostile file.
MAX_NPZ_BYTES = 4 * 1024**3  # all arrays of one .npz together, once loaded
MAX_NPZ_MEMBERS = 64  # a contract has fewer than 10 fields
MAX_JSON_CHARS = 16 * 1024**2  # a meta or record document (chord writes a few kB)
MAX_JSON_DEPTH = 64  # nesting of a JSON document (chord's go about 6 deep); Python's parser recurses
# Values (containers and scalars) a YAML document may expand to through its aliases: scenes and
# parts files hold hundreds; a "billion laughs" document expands a few hundred bytes to 387
# million, which every later walk of it would visit.
MAX_YAML_VALUES = 100_000
_NPY_MAGIC = b"\x93NUMPY"


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

    Raises ContractError for a missing or unreadable file, pickled content, a member too large or
    with a forged header (:func:`inspect_npz`, checked before anything is allocated), a missing or
    unexpected field, or a meta whose schema or version this reader does not know, or that is too
    large or nested too deep.
    """
    path = Path(path)
    inspect_npz(path)  # sizes, headers and dtypes, before anything is allocated
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
    meta = load_json_text(str(raw), "meta", path)
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
    members = inspect_npz(path)
    if "meta" not in members:
        raise ContractError("meta", "missing: not a chord contract file", path)
    try:
        with np.load(path, allow_pickle=False) as z:
            raw = z["meta"]
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, AttributeError) as e:
        raise ContractError("file", f"is not a readable .npz archive ({e})", path) from e
    if raw.dtype.kind != "U" or raw.ndim != 0:
        raise ContractError("meta", f"expected a JSON string, got dtype {raw.dtype} shape {raw.shape}", path)
    meta = load_json_text(str(raw), "meta", path)
    if not isinstance(meta, dict):
        raise ContractError("meta", f"expected a JSON object, got {type(meta).__name__}", path)
    return meta.get("schema")


# -- size guards ----------------------------------------------------------------------------
def inspect_npz(path: str | Path) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Check an .npz archive before any array is read: returns {field: (shape, dtype)}.

    Reads only the zip directory and each member's .npy header. Raises ContractError for a
    missing or non-regular file, a single .npy or non-zip file, more than ``MAX_NPZ_MEMBERS``
    members, a member whose declared size or header asks for more than ``MAX_NPZ_BYTES`` (the
    numbers in the message), a header that disagrees with the member's size, and an object dtype.
    """
    path = Path(path)
    if not path.exists():
        raise ContractError("file", "does not exist", path)
    if not stat.S_ISREG(path.stat().st_mode):
        raise ContractError("file", "is not a regular file", path)
    try:
        with path.open("rb") as fh:
            if fh.read(len(_NPY_MAGIC)) == _NPY_MAGIC:
                raise ContractError("file", "holds a single .npy array, expected an .npz archive", path)
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise ContractError("file", f"is not a readable .npz archive ({e})", path) from e
    members: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
    with archive:
        infos = archive.infolist()
        if len(infos) > MAX_NPZ_MEMBERS:
            raise ContractError(
                "file",
                f"has {len(infos)} members, more than the {MAX_NPZ_MEMBERS} a contract file may have",
                path,
            )
        total = 0
        on_disk = path.stat().st_size
        for info in infos:
            key = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            if info.file_size > MAX_NPZ_BYTES:
                raise ContractError(
                    key,
                    f"expands to {info.file_size} bytes ({_human(info.file_size)}) from a "
                    f"{_human(on_disk)} file, more than the {_human(MAX_NPZ_BYTES)} a contract file may "
                    "hold; refused before reading it",
                    path,
                )
            shape, dtype, offset = _npy_header(archive, info, key, path)
            if dtype.hasobject:
                raise ContractError(key, f"holds pickled Python objects, refused (dtype {dtype})", path)
            nbytes = math.prod(shape) * dtype.itemsize
            if nbytes > MAX_NPZ_BYTES:
                raise ContractError(
                    key,
                    f"its header asks for shape {shape} of {dtype}: {nbytes} bytes ({_human(nbytes)}), "
                    f"more than the {_human(MAX_NPZ_BYTES)} a contract file may hold; refused before "
                    "allocating it",
                    path,
                )
            if nbytes != info.file_size - offset:
                raise ContractError(
                    key,
                    f"its header declares shape {shape} of {dtype} ({nbytes} bytes), but the archive "
                    f"holds {info.file_size - offset} bytes for it: a damaged or forged file",
                    path,
                )
            total += nbytes
            if total > MAX_NPZ_BYTES:
                raise ContractError(
                    "file",
                    f"its arrays take {_human(total)} once loaded, more than the "
                    f"{_human(MAX_NPZ_BYTES)} a contract file may hold",
                    path,
                )
            members[key] = (shape, dtype)
    return members


def _npy_header(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, key: str, path: Path
) -> tuple[tuple[int, ...], np.dtype, int]:
    """The shape, dtype and data offset of one .npy member, from its header alone."""
    try:
        with archive.open(info) as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise ValueError(f".npy format version {version} is not one chord writes (1.0 or 2.0)")
            offset = f.tell()
    except (
        ValueError,
        SyntaxError,
        zipfile.BadZipFile,
        OSError,
        EOFError,
        NotImplementedError,
        RuntimeError,
    ) as e:
        # NotImplementedError: an unsupported compression; RuntimeError: an encrypted member.
        raise ContractError(key, f"is not a readable .npy array ({' '.join(str(e).split())})", path) from e
    return tuple(int(n) for n in shape), np.dtype(dtype), offset


def _human(n: int) -> str:
    """Bytes for people: 18.3 GiB, 447.0 TiB."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if value < 1024 or unit == "PiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError  # pragma: no cover


# -- JSON ------------------------------------------------------------------------------------
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def json_depth(text: str) -> int:
    """How deep the arrays and objects of a JSON text nest, counted without parsing (no recursion)."""
    brackets = _JSON_STRING.sub("", text)  # brackets inside strings do not nest
    codes = np.frombuffer(brackets.encode("utf-8", "replace"), dtype=np.uint8)
    step = np.isin(codes, (ord("["), ord("{"))).astype(np.int32) - np.isin(codes, (ord("]"), ord("}")))
    return int(np.cumsum(step).max()) if step.size else 0


def load_json_text(
    text: str,
    field: str,
    path: str | Path | None,
    *,
    max_chars: int = MAX_JSON_CHARS,
    max_depth: int = MAX_JSON_DEPTH,
) -> Any:
    """Parse a JSON document after checking its size and nesting depth; raises ContractError."""
    if len(text) > max_chars:
        raise ContractError(
            field, f"is {len(text)} characters of JSON, more than the {max_chars} allowed", path
        )
    depth = json_depth(text)
    if depth > max_depth:
        raise ContractError(
            field, f"nests {depth} levels deep, more than the {max_depth} a chord document may", path
        )
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as e:
        raise ContractError(field, f"is not valid JSON ({e})", path) from e


def read_json_file(
    path: str | Path, *, max_bytes: int = MAX_JSON_CHARS, field: str = "file", what: str = "a chord JSON file"
) -> Any:
    """Read a JSON file: a regular file of at most ``max_bytes``, UTF-8, size and depth checked.

    Raises ContractError naming the file for a missing or non-regular file (a device such as
    /dev/zero, a FIFO), one too large, one not UTF-8 or not JSON, or one nested too deep.
    """
    path = Path(path)
    if not path.exists():
        raise ContractError(field, "does not exist", path)
    info = path.stat()
    if not stat.S_ISREG(info.st_mode):
        raise ContractError(field, "is not a regular file", path)
    if info.st_size > max_bytes:
        raise ContractError(field, f"is {info.st_size} bytes, more than {what}'s {max_bytes}", path)
    with path.open("rb") as fh:
        raw = fh.read(max_bytes + 1)  # the file may have grown since stat
    if len(raw) > max_bytes:
        raise ContractError(field, f"is more than {what}'s {max_bytes} bytes", path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ContractError(field, f"is not UTF-8 text ({e})", path) from e
    return load_json_text(text, field, path, max_chars=max_bytes)


def depth_exceeds(doc: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether a parsed document (dicts and lists) nests deeper than ``limit``, without recursion.

    Stops at the limit, so a self-referencing document (YAML anchors can build one) terminates.
    """
    stack = [(doc, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            if depth > limit:
                return True
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def values_exceed(doc: Any, limit: int) -> bool:
    """Whether a parsed document holds more than ``limit`` values once YAML aliases are expanded
    (every container and scalar counts each time it is reached), without recursion.

    Stops at the limit: a "billion laughs" document (nine lists of nine aliases of the last,
    nine deep) reaches 387 million values from a few hundred bytes, which any walk of it would
    visit; a self-referencing one never ends.
    """
    stack = [doc]
    seen = 0
    while stack:
        node = stack.pop()
        seen += 1
        if seen > limit:
            return True
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


def read_yaml_file(
    path: str | Path,
    *,
    max_bytes: int = MAX_JSON_CHARS,
    max_depth: int = MAX_JSON_DEPTH,
    what: str = "a chord YAML file",
) -> Any:
    """Read a YAML file safely: a regular file of at most ``max_bytes``, nested at most ``max_depth``.

    ``yaml.safe_load`` (no Python objects), after the size check; a document nested too deep for
    the parser (its RecursionError), or deeper than ``max_depth`` once parsed (also a
    self-referencing one built with anchors), is refused. Raises ContractError naming the file.
    """
    import yaml

    path = Path(path)
    if not path.exists():
        raise ContractError("file", "does not exist", path)
    info = path.stat()
    if not stat.S_ISREG(info.st_mode):
        raise ContractError("file", "is not a regular file", path)
    if info.st_size > max_bytes:
        raise ContractError("file", f"is {info.st_size} bytes, more than {what}'s {max_bytes}", path)
    try:
        text = path.read_bytes()[: max_bytes + 1].decode("utf-8")
    except UnicodeDecodeError as e:
        raise ContractError("file", f"is not UTF-8 text ({e})", path) from e
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ContractError("file", f"is not valid YAML: {e}".replace("\n", " "), path) from e
    except RecursionError as e:
        raise ContractError(
            "file", f"nests deeper than the YAML parser can follow (at most {max_depth} levels allowed)", path
        ) from e
    # Counted first: it stops after MAX_YAML_VALUES steps whatever the aliases do, where a walk for
    # the depth would visit every expanded value.
    if values_exceed(doc, MAX_YAML_VALUES):
        raise ContractError(
            "file",
            f"holds more than {MAX_YAML_VALUES:,} values once its aliases (*name) are expanded, or an "
            "alias refers to itself; a chord YAML file holds hundreds",
            path,
        )
    if depth_exceeds(doc, max_depth):
        raise ContractError("file", f"nests more than {max_depth} levels deep", path)
    return doc
