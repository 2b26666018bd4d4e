#!/usr/bin/env bash
# Sets up (scripts/setup.sh), then runs ruff and the test suite. GPU and hardware tests are left
# out (no GPU or robot here); extra arguments go to both pytest runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
. "${CHORD_VENV:-.venv}/bin/activate"
ruff check .
ruff format --check .
# The suite runs on every core (pytest-xdist, CHORD_TEST_WORKERS overrides; one torch thread per
# worker so they do not fight over the cores; worksteal: a worker that runs out takes the other's
# pending tests, since a few tests take a minute or more). The realtime tests (franky-sim runs on the wall
# clock, so a loaded CPU can fail them) run alone afterwards.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
set +e
python -m pytest -m "not gpu and not hardware and not realtime" -n "${CHORD_TEST_WORKERS:-auto}" --dist worksteal "$@"
rc=$?
python -m pytest -m "realtime and not gpu and not hardware" "$@"
rc_realtime=$?
set -e
if [ "$rc" -eq 5 ] && [ "$rc_realtime" -eq 5 ]; then
  echo "test: pytest collected no tests" >&2
  exit 1
fi
# Exit status 5 (nothing collected) of one part alone is fine: `-k` may select only the other.
[ "$rc" -eq 5 ] && rc=0
[ "$rc_realtime" -eq 5 ] && rc_realtime=0
[ "$rc" -ne 0 ] && exit "$rc"
exit "$rc_realtime"
