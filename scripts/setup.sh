#!/usr/bin/env bash
# Sets up chord on a fresh Debian/Ubuntu machine: system packages, a virtual environment in .venv
# (override with CHORD_VENV), torch first and pinned, then the project (editable) with dev tools
# and the robot SDKs the tests exercise (franky + its loopback simulator, ur-rtde, xArm) and the
# UR5's model (example-robot-data) for the robot registry.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${CHORD_VENV:-.venv}
PYTHON=${PYTHON:-python3}
# torch goes in first and pinned: an unpinned torch (or a dependency's range) pulls several GB of
# CUDA wheels. 2.13.0 is the CPU build where pip's config finds it (CI); override on other machines.
TORCH_SPEC=${CHORD_TORCH_SPEC:-torch==2.13.0}

# open3d needs libusb-1.0 at import time (docs/design.md, measured facts).
if ! ldconfig -p 2>/dev/null | grep -q 'libusb-1.0.so.0'; then
  echo "setup: installing Debian package libusb-1.0-0 (open3d needs it)"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libusb-1.0-0 >/dev/null
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating virtual environment $VENV with $($PYTHON --version)"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
"$PY" -m pip install -q --upgrade pip
if ! "$PY" -c 'import torch' 2>/dev/null; then
  echo "setup: installing $TORCH_SPEC"
  "$PY" -m pip install -q "$TORCH_SPEC"
fi
echo "setup: installing chord and its dependencies"
"$PY" -m pip install -q -e ".[dev,franka-sim,ur,xarm,ur-model]"
echo "setup: done ($("$PY" -c 'import torch; print("torch", torch.__version__)'))"
