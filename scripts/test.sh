#!/usr/bin/env bash
# Newcomer command 2 (and what CI runs): install everything the tests need, then run the whole suite.
# The integration tier uses real parts: the chdb engine, real server processes, curl, Apache Kafka,
# and headless Chromium (Debian's, driven by playwright-core) for the beacon.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONDONTWRITEBYTECODE=1

need_apt=()
command -v curl >/dev/null || need_apt+=(curl)
command -v java >/dev/null || need_apt+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || need_apt+=(maven)
command -v chromium >/dev/null || need_apt+=(chromium)
command -v node >/dev/null || need_apt+=(nodejs npm)
command -v cc >/dev/null || need_apt+=(gcc)  # the compiled core (scripts/build_core.py)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing system packages: ${need_apt[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
bash scripts/setup.sh test
# real Apache Kafka for the integration tier, resolved from Maven Central once (cached in ~/.cache/dealbeacon)
.venv/bin/dealbeacon kafka fetch > /dev/null

# the beacon: npm deps, unit tests (vitest), build with the 3 KB gzip budget, committed bundle up to date
(
  cd js-snippet
  # npm install (not ci): with this machine's npm config (omit-lockfile-registry-resolved) `npm ci` rejects
  # the lock over other platforms' optional packages; install still honours the locked versions
  npm install --no-audit --no-fund --loglevel=error
  npx vitest run
  node build.mjs
)
if git rev-parse --git-dir >/dev/null 2>&1 && ! git diff --quiet -- js-snippet/dist; then
  echo "js-snippet/dist/dealbeacon.js is stale: run 'npm run build' in js-snippet and commit it" >&2
  exit 1
fi

# static checks on the package: layers (import-linter contracts in pyproject.toml), lint, types
.venv/bin/lint-imports --no-cache
.venv/bin/ruff check dealbeacon ingest streams sinks
.venv/bin/mypy

.venv/bin/python -m pytest -p no:cacheprovider "$@"
