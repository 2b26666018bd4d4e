#!/usr/bin/env bash
# Sets up (scripts/setup.sh), then runs the main job on its CPU default: no GPU, no model weights.
# Today that is the part of the pipeline that exists: validating the example scene.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
. "${CHORD_VENV:-.venv}/bin/activate"
chord check examples/pick_banana.yaml
