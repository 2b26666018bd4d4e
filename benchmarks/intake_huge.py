"""Time and peak memory of `chord assets intake` on huge meshes (the attack's 1.3M-face mesh).

Each size runs in a child process (`chord assets intake`), so its peak resident memory is its own.
Run: python benchmarks/intake_huge.py [--subdivisions 7 8]
An icosphere of 10 cm radius with s subdivisions has 20 * 4**s faces (s=7: 328k, s=8: 1.31M).
Prints one line per mesh; quote the output, do not assert on it.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--subdivisions", type=int, nargs="+", default=[7, 8])
    args = ap.parse_args()

    import trimesh

    with tempfile.TemporaryDirectory() as tmp:
        for s in args.subdivisions:
            mesh = trimesh.creation.icosphere(subdivisions=s, radius=0.1)
            path = Path(tmp) / f"sphere_{s}.ply"
            mesh.export(path)
            out = Path(tmp) / f"asset_{s}"
            cmd = [sys.executable, "-m", "chord", "assets", "intake", str(path), "--out", str(out)]
            t = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True)
            wall = time.perf_counter() - t
            peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20  # GiB, largest child so far
            warned = "decimat" in proc.stderr
            print(
                f"intake of {len(mesh.faces):,} faces ({path.stat().st_size / 2**20:.0f} MiB PLY): "
                f"exit {proc.returncode}, {wall:.1f} s, peak RSS so far {peak:.2f} GiB, "
                f"decimation warned: {warned}"
            )
            if proc.returncode != 0:
                print(proc.stderr.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
