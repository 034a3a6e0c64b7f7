#!/usr/bin/env bash
# Installs dealbeacon's Python side into .venv (created if missing). Idempotent and quick when cached.
#   bash scripts/setup.sh          runtime only
#   bash scripts/setup.sh test     runtime + test dependencies
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
if [ "${1:-}" = "test" ]; then
  .venv/bin/python -m pip install -q -e '.[test]'
else
  .venv/bin/python -m pip install -q -e .
fi
echo "python deps ready in .venv ($(.venv/bin/python --version))"
