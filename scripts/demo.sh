#!/usr/bin/env bash
# Sets up (scripts/setup.sh), then runs the main job on its CPU default (no GPU, no model weights):
# the pick-banana task scene -> `chord run`: 4D flow fitted to its reference RGB-D video (the video
# prior) -> plan -> PyBullet verdict -> rerun recording and plots, ending with a summary.
# Outputs go to runs/demo (override with CHORD_DEMO_OUT). Exit status 1 if the plan fails in sim.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
. "${CHORD_VENV:-.venv}/bin/activate"
OUT=${CHORD_DEMO_OUT:-runs/demo}
rm -rf "$OUT"
chord assets tasks --out "$OUT/scenes" --only pick_banana
chord run "$OUT/scenes/pick_banana/scene.yaml" --out "$OUT"
