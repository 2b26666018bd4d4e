"""The hostile-input corpus (tests/hostile/make_hostile.py): every case refused cleanly.

For each case: the command exits with the case's status (1: one line ``chord <sub>: error: ...``
naming what is wrong; 2: tyro's usage message for a malformed command line), prints no traceback,
writes nothing outside the case's ``out/`` folder, and no hostile plan reaches an arm's command
call. Cases that would hang are stopped by an alarm and fail.
"""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import pytest

from tests.built_once import build_once
from tests.hostile import make_hostile as H

CASE_SECONDS = 120  # a refusal takes seconds; a case still running after this is a hang
ESCAPE = Path("/tmp/chord_hostile_escape")  # where path-traversal cases aim outside their folder


@pytest.fixture(scope="session")
def hostile(tmp_path_factory, worker_id, tiny_wan_a14b) -> tuple[Path, H.Corpus, tuple[Path, ...]]:
    root = tmp_path_factory.mktemp("hostile")
    # The valid inputs (scene, flow, plan, Wan folder: the session's tiny one) are built once per
    # session and copied in, so every worker's cases sit in a folder of their own (a case's check
    # snapshots all of root).
    built = build_once(
        tmp_path_factory, worker_id, "hostile_valid", lambda f: H.valid_inputs(f, tiny_wan_a14b)
    )
    shutil.copytree(built / "valid", root / "valid")
    inputs = H.valid_paths(root)
    corpus = H.build(*inputs)
    H.write(corpus, root / "cases")
    return root, corpus, inputs


def _snapshot(root: Path, skip: Path) -> dict[str, tuple[int, int]]:
    """path -> (size, mtime_ns) of every file (and link) under ``root``, and path -> (-1, 0) of every
    folder, except ``skip`` and what is under it. A folder's own mtime is left out: creating
    ``out/`` in the case folder, or a temporary file that is gone again, changes it without writing
    anything. (os.scandir on plain strings: each of the ~260 cases takes two snapshots of the whole
    corpus, ~1,100 entries: os.walk with a Path per entry took 132 ms a snapshot, this 46 ms)"""
    out = {}
    skipped, pending = str(skip), [str(root)]
    while pending:
        try:
            entries = os.scandir(pending.pop())
        except (FileNotFoundError, NotADirectoryError):  # gone since its parent was listed
            continue
        with entries:
            for e in entries:
                if e.is_dir(follow_symlinks=False):
                    if e.path != skipped:
                        out[e.path] = (-1, 0)
                        pending.append(e.path)
                    continue
                try:
                    st = e.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                out[e.path] = (st.st_size, st.st_mtime_ns)
    return out


class _HangError(Exception):
    pass


def _on_alarm(signum, frame):
    raise _HangError(f"still running after {CASE_SECONDS} s")


def _run(case: H.Case, folder: Path, monkeypatch, capsys) -> tuple[int, str, str, int]:
    """Run the case in-process from its folder; returns (exit status, stdout, stderr, commands that
    reached an arm or a gripper). The operator's typed confirmation is granted: only chord real's
    own checks stand between a hostile plan and the arm. The fake arm and hand run on a simulated
    clock (real.backends.fake.SimClock) instead of the wall clock: the same commands in the same
    order, without sleeping through the plan (8 of the control's 10 s); no case's refusal depends
    on the clock (each is refused before the arm moves)."""
    import chord.cli.real
    import real.backends.fake
    from chord.cli.main import main
    from real.robot import Gripper, Robot

    sent = []

    def counting(cls, name):
        real_method = getattr(cls, name)

        def method(self, *a, **k):
            sent.append(name)
            return real_method(self, *a, **k)

        monkeypatch.setattr(cls, name, method)

    counting(Robot, "send_action")
    counting(Gripper, "move")
    counting(Gripper, "grasp")
    monkeypatch.setattr(chord.cli.real, "confirm", lambda request, *a, **k: True)
    monkeypatch.setattr(real.backends.fake, "WallClock", real.backends.fake.SimClock)
    monkeypatch.chdir(folder)
    old = signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(CASE_SECONDS)
    try:
        try:
            code = main(case.args(folder))
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    out = capsys.readouterr()
    return code, out.out, out.err, len(sent)


def _check(case: H.Case, folder: Path, root: Path, monkeypatch, capsys) -> None:
    before = _snapshot(root, folder / "out")
    code, out, err, sent = _run(case, folder, monkeypatch, capsys)
    assert "Traceback" not in out + err, err[-3000:]
    assert code == case.exit_code, f"exit {code}, expected {case.exit_code}: {err[-2000:]}"
    if case.verdict:
        # chord sim's answer for a plan the arm cannot follow: a FAILURE verdict naming the stage.
        message = out + err
        assert ": FAILURE (" in out, out[-2000:]
    elif case.exit_code == 1:
        # The error starts on a line of its own ("chord <sub>: error: ..."); a list of missing files
        # may follow it, as the Wan folder check gives.
        start = 0 if err.startswith("chord ") and "\nchord " not in err else err.rfind("\nchord ") + 1
        message = err[start:]
        assert message.startswith("chord ") and ": error: " in message.splitlines()[0], err[-2000:]
    else:
        message = err
    for word in case.expect:
        assert word in message, f"{word!r} not in {message!r}"
    after = _snapshot(root, folder / "out")
    written = sorted(set(after) - set(before)) + sorted(
        k for k in before if k in after and after[k] != before[k]
    )
    assert written == [], f"written outside {folder / 'out'}: {written[:10]}"
    assert not ESCAPE.exists(), f"{ESCAPE} was written"
    assert sent == 0, f"{sent} commands reached the arm"


@pytest.mark.parametrize("kind", H.KINDS)
def test_every_kind_has_at_least_25_cases(hostile, kind):
    _, corpus, _ = hostile
    names = [c.name for c in corpus.cases if c.kind == kind]
    assert len(names) >= 25, (kind, len(names))


# The plan cases (each chord real case re-simulates its plan, ~2 s) run as two tests, so that
# parallel workers share them; every other kind is one test.
PARTS = {"plan": 2}


@pytest.mark.parametrize(
    ("kind", "part"), [(k, i) for k in H.KINDS for i in range(PARTS.get(k, 1))], ids=lambda v: str(v)
)
def test_every_case_is_refused_cleanly(hostile, kind, part, monkeypatch, capsys):
    """All cases of one kind, or of one part of it (the inputs are built once per worker)."""
    root, corpus, _ = hostile
    failures = []
    mine = [c for c in corpus.cases if c.kind == kind][part :: PARTS.get(kind, 1)]
    for case in mine:
        folder = root / "cases" / case.kind / case.name
        try:
            _check(case, folder, root, monkeypatch, capsys)
        except (AssertionError, _HangError) as e:
            failures.append(f"{case.name}: {str(e).splitlines()[0][:300]}")
        except Exception as e:  # an exception main() let through is a traceback the user sees
            failures.append(f"{case.name}: {type(e).__name__}: {str(e)[:300]}")
        monkeypatch.undo()
    assert not failures, f"{len(failures)} of {len(mine)} {kind} cases (part {part}):\n" + "\n".join(failures)


def test_the_valid_plan_reaches_the_arm_so_the_count_can_fail(hostile, monkeypatch, capsys):
    """The control: the corpus's valid, sim-validated plan, run the same way, does command the
    (fake) arm and its gripper, so a zero count for the hostile plans means they were stopped."""
    root, _, (scene, flow, plan, _) = hostile
    folder = root / "control"
    (folder / "out").mkdir(parents=True)
    (folder / "plan.npz").write_bytes(plan.read_bytes())
    # An object 4 cm wide between the fingers: the fake hand stops on it, so the grasp is verified.
    argv = H.real_argv(scene, flow, "--fake-object-width", "0.04")
    case = H.Case("plan", "control", argv, ())
    code, out, err, sent = _run(case, folder, monkeypatch, capsys)
    assert "verdict: PASS" in out, out[-3000:]
    assert sent > 0, (sent, out[-2000:])
    # On a loaded test machine the fake arm's wall-clock watchdog may stop it part-way; that is
    # the stop working, not the plan failing.
    assert code == 0 or "deadline_missed" in err, err[-2000:]


def test_the_forged_record_matches_the_plan_so_only_chord_real_s_own_checks_refuse(hostile):
    """chord real's cases carry a forged record; it must hold for its plan (else every case would be
    refused for hash_mismatch alone, and the checks behind it would go untested)."""
    import json

    import numpy as np

    from core.plan import Plan

    _, _, (_, _, plan, _) = hostile
    with np.load(plan) as z:
        arrays = {k: z[k] for k in z.files if k != "meta"}
        meta = json.loads(str(z["meta"]))
    forged = H._forge(arrays, {**meta, "validation": None})
    assert forged["validation"]["plan_sha256"] == Plan.load(plan).content_hash()
    arrays["gripper"] = arrays["gripper"] + 1e-3  # an edit changes the hash the forger writes
    assert H._forge(arrays, meta)["validation"]["plan_sha256"] != Plan.load(plan).content_hash()
