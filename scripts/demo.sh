#!/usr/bin/env bash
# Sets up (scripts/setup.sh), then runs the main job on its CPU default (no GPU, no model weights):
# the pick-banana task scene -> 4D flow fitted to its reference RGB-D video (chord flow --prior video)
# -> plan -> PyBullet verdict. Outputs go to runs/demo (override with CHORD_DEMO_OUT).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
. "${CHORD_VENV:-.venv}/bin/activate"
OUT=${CHORD_DEMO_OUT:-runs/demo}
rm -rf "$OUT"
SECONDS=0
chord assets tasks --out "$OUT/scenes" --only pick_banana
SCENE="$OUT/scenes/pick_banana/scene.yaml"
t_assets=$SECONDS
chord flow "$SCENE" --out "$OUT"
t_flow=$((SECONDS - t_assets))
chord plan "$OUT/flow.npz" --scene "$SCENE" --out "$OUT/plan.npz"
t_plan=$((SECONDS - t_assets - t_flow))
verdict=0
chord sim "$OUT/plan.npz" --scene "$SCENE" --planned-from "$OUT/flow.npz" --write-verdict --out "$OUT/sim.json" || verdict=$?
t_sim=$((SECONDS - t_assets - t_flow - t_plan))
chord view "$OUT" --out "$OUT/demo.rrd" --plots "$OUT/plots" >/dev/null || echo "demo: rerun recording failed (see above)"
echo
echo "demo: outputs in $OUT: flow.npz, preview.mp4, plan.npz, sim.json, demo.rrd, plots/, scenes/"
echo "demo: seconds: assets $t_assets, flow $t_flow, plan $t_plan, sim $t_sim"
echo "demo: look at it: open $OUT/preview.mp4, or \`rerun $OUT/demo.rrd\`"
exit "$verdict"
