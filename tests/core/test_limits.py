"""Size guards of the contract readers (core.contract): nothing is allocated before it is checked.

The attacks of issue 20: a 19 MB npz that expands to 18 GiB, an .npy header asking for 447 TiB,
meta JSON nested 100,000 deep (RecursionError in chord check and chord view), a JSON record that
is /dev/zero. Each now gives one line naming the file, the field and the numbers, at once.
"""

from __future__ import annotations

import io
import json
import struct
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from core.contract import MAX_JSON_DEPTH, MAX_NPZ_MEMBERS, inspect_npz, json_depth, read_json_file
from core.errors import ContractError
from core.flow import ObjectFlow
from core.plan import Plan
from tests.core.make_corpus import good_flow, good_plan


def _npy_header(shape: tuple[int, ...], descr: str = "<f4") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()  # magic, version 1.0, header (padded to 64 bytes)


def _good_members(kind: str = "flow") -> dict[str, bytes]:
    arrays, meta = good_flow() if kind == "flow" else good_plan()
    members = {}
    for k, v in {**arrays, "meta": np.array(json.dumps(meta))}.items():
        buf = io.BytesIO()
        np.save(buf, v, allow_pickle=False)
        members[f"{k}.npy"] = buf.getvalue()
    return members


def _write_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def test_a_lying_header_asking_for_tib_is_refused_before_allocating(tmp_path: Path):
    members = _good_members()
    members["points.npy"] = _npy_header((41, 10**12, 3)) + b"\0" * 64  # 447 TiB declared, 64 B held
    path = _write_zip(tmp_path / "flow.npz", members)
    t0 = time.perf_counter()
    with pytest.raises(ContractError) as info:
        ObjectFlow.load(path)
    assert time.perf_counter() - t0 < 1.0
    message = str(info.value)
    assert message.startswith(f"{path}: points: its header asks for shape (41, 1000000000000, 3) of float32")
    assert "492000000000000 bytes (447.5 TiB)" in message and "refused before allocating it" in message


def test_a_header_that_disagrees_with_its_member_is_refused(tmp_path: Path):
    members = _good_members("plan")
    members["q.npy"] = _npy_header((4, 70)) + b"\0" * (4 * 7 * 4)  # declares 1120 bytes, holds 112
    path = _write_zip(tmp_path / "plan.npz", members)
    with pytest.raises(
        ContractError, match=r"q: its header declares shape \(4, 70\) of float32 \(1120 bytes\), "
    ):
        Plan.load(path)


def _zip64_bomb(path: Path, name: str, header: bytes, data_bytes: int, extra: dict[str, bytes]) -> Path:
    """A zip whose deflated member ``name`` really expands to ``header`` + ``data_bytes`` zeros,
    followed by the small stored members ``extra`` (a flow's meta, ...).

    The stream repeats one fully flushed deflate block of 1 MiB of zeros (about 1 kB each), so a
    file of ~1/1000 the size is written in well under a second. The bomb's CRC is not computed (it
    would take reading 18 GiB); the readers refuse the member long before they would check it.
    """
    chunk = 1 << 20
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = c.compress(header + bytes(chunk - len(header))) + c.flush(zlib.Z_FULL_FLUSH)
    block = c.compress(bytes(chunk)) + c.flush(zlib.Z_FULL_FLUSH)
    assert block == c.compress(bytes(chunk)) + c.flush(zlib.Z_FULL_FLUSH)  # the stream repeats
    total = len(header) + data_bytes
    full, rest = divmod(total - chunk, chunk)
    tail = c.compress(bytes(rest)) + c.flush()
    stream_len = len(first) + (full - 1) * len(block) + len(tail)  # (the 2nd block was used above)
    fname = name.encode()
    z64 = struct.pack("<HHQQ", 1, 16, total, stream_len)
    big = 0xFFFFFFFF
    central = [
        struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 0, 8, 0, 0x21, 0, big, big, len(fname),
                    len(z64), 0, 0, 0, 0, 0) + fname + z64
    ]  # fmt: skip
    with path.open("wb") as f:
        f.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0, 8, 0, 0x21, 0, big, big, len(fname), len(z64)))
        f.write(fname + z64 + first)
        for _ in range(full - 1):
            f.write(block)
        f.write(tail)
        for member, data in extra.items():
            offset, mname, crc = f.tell(), member.encode(), zlib.crc32(data)
            f.write(
                struct.pack(
                    "<IHHHHHIIIHH", 0x04034B50, 20, 0, 0, 0, 0x21, crc, len(data), len(data), len(mname), 0
                )
            )
            f.write(mname + data)
            central.append(
                struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 0, 0, 0x21, crc, len(data), len(data),
                            len(mname), 0, 0, 0, 0, 0, offset) + mname
            )  # fmt: skip
        cd_offset = f.tell()
        cd = b"".join(central)
        f.write(cd)
        eocd64 = f.tell()
        n = len(central)
        f.write(struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, n, n, len(cd), cd_offset))
        f.write(struct.pack("<IIQI", 0x07064B50, 0, eocd64, 1))
        f.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, n, n, len(cd), cd_offset, 0))
    return path


def test_a_19_mb_npz_expanding_to_18_gib_is_refused_before_reading(tmp_path: Path, capsys):
    shape = (41, 40_000_000, 3)  # float32: 19.68e9 bytes, 18.3 GiB
    members = _good_members()  # a flow whose points are the bomb: its meta says chord.flow
    del members["points.npy"]
    path = _zip64_bomb(
        tmp_path / "bomb.npz", "points.npy", _npy_header(shape), int(np.prod(shape)) * 4, members
    )
    assert 15e6 < path.stat().st_size < 25e6  # ~19 MB on disk
    with zipfile.ZipFile(path) as z:  # a real archive: Python's zipfile reads its directory
        assert z.infolist()[0].file_size > 18 * 1024**3
        assert json.loads(str(np.load(z.open("meta.npy"))))["schema"] == "chord.flow"
    t0 = time.perf_counter()
    with pytest.raises(ContractError) as info:
        ObjectFlow.load(path)
    assert time.perf_counter() - t0 < 1.0
    message = str(info.value)
    assert f"{path}: points: expands to " in message and "(18.3 GiB) from a 18." in message
    assert "more than the 4.0 GiB a contract file may hold; refused before reading it" in message

    from chord.cli.main import main

    assert main(["check", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("chord check: error: ") and err.count("\n") == 1 and "18.3 GiB" in err


def test_too_many_members_are_refused(tmp_path: Path):
    members = _good_members()
    for i in range(MAX_NPZ_MEMBERS):
        members[f"extra{i}.npy"] = members["times.npy"]
    path = _write_zip(tmp_path / "flow.npz", members)
    with pytest.raises(ContractError, match=f"file: has {MAX_NPZ_MEMBERS + 4} members, more than the 64"):
        ObjectFlow.load(path)


def test_a_device_or_fifo_is_not_read(tmp_path: Path):
    with pytest.raises(ContractError, match="/dev/zero: file: is not a regular file"):
        ObjectFlow.load(Path("/dev/zero"))
    with pytest.raises(ContractError, match="/dev/zero: file: is not a regular file"):
        read_json_file(Path("/dev/zero"))


def _deep_meta_flow(path: Path, depth: int) -> Path:
    members = _good_members()
    buf = io.BytesIO()
    np.save(buf, np.array("[" * depth + "]" * depth), allow_pickle=False)
    members["meta.npy"] = buf.getvalue()
    return _write_zip(path, members)


def test_meta_nested_100000_deep_is_one_line_in_the_reader_check_and_view(tmp_path: Path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    path = _deep_meta_flow(run / "flow.npz", 100_000)
    with pytest.raises(ContractError, match="meta: nests 100000 levels deep, more than the 64"):
        ObjectFlow.load(path)

    from chord.cli.main import main

    assert main(["check", str(path)]) == 1
    err = capsys.readouterr().err
    assert (
        err
        == f"chord check: error: {path}: meta: nests 100000 levels deep, more than the 64 a chord document may\n"
    )
    # chord view skips the broken flow with a warning and says the folder holds nothing to show.
    assert main(["view", str(run)]) == 1
    err = capsys.readouterr().err
    assert "RecursionError" not in err and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("chord view: error: ")

    (run / "sim.json").write_text("[" * 100_000 + "]" * 100_000)
    (run / "flow.npz").unlink()
    assert main(["view", str(run), "--out", str(tmp_path / "r.rrd")]) == 1
    err = capsys.readouterr().err
    assert "sim.json: file: nests 100000 levels deep" in err and "Traceback" not in err


def test_depth_at_the_limit_is_read(tmp_path: Path):
    nested: list = []
    for _ in range(MAX_JSON_DEPTH - 1):
        nested = [nested]
    text = json.dumps(nested)
    assert json_depth(text) == MAX_JSON_DEPTH
    assert json_depth('{"a": "[[[[[", "b": ["\\"]]"]}') == 2  # brackets in strings do not count
    path = tmp_path / "x.json"
    path.write_text(text)
    assert read_json_file(path) == nested


def test_json_files_are_refused_when_too_large(tmp_path: Path):
    path = tmp_path / "x.json"
    with path.open("w") as f:
        f.truncate(100)
    with pytest.raises(ContractError, match="file: is 100 bytes, more than a chord JSON file's 10"):
        read_json_file(path, max_bytes=10)


def test_inspect_reports_every_member(tmp_path: Path):
    path = _write_zip(tmp_path / "flow.npz", _good_members())
    members = inspect_npz(path)
    assert set(members) == {"points", "object_index", "times", "meta"}
    assert members["points"] == ((5, 6, 3), np.dtype("float32"))
