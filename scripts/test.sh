#!/usr/bin/env bash
# Sets up (scripts/setup.sh), then runs ruff and the test suite. GPU and hardware tests are left
# out (no GPU or robot here); extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
. "${CHORD_VENV:-.venv}/bin/activate"
ruff check .
ruff format --check .
set +e
python -m pytest -m "not gpu and not hardware" "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "test: pytest collected no tests" >&2
  exit 1
fi
exit "$rc"
