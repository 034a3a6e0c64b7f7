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
# the pure core compiled with mypyc (scripts/build_core.py, 1.25-1.35x, same rows), unless already built from
# these sources; without a C compiler, or if the build fails, the core runs interpreted
.venv/bin/python -m pip install -q "mypy>=1.10"
if ! .venv/bin/python -c "import streams, sys; sys.exit(0 if streams.COMPILED else 1)"; then
  if command -v cc >/dev/null; then
    .venv/bin/python scripts/build_core.py || echo "compiled core not built: the core runs interpreted"
  else
    echo "no C compiler (cc): the core runs interpreted"
  fi
fi
echo "python deps ready in .venv ($(.venv/bin/python --version))"
