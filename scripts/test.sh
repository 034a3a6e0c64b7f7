#!/usr/bin/env bash
# Newcomer command 2 (and what CI runs): install everything the tests need, then run the whole suite.
# Real parts only in the integration tier: the chdb engine, real server processes, curl.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONDONTWRITEBYTECODE=1

need_apt=()
command -v curl >/dev/null || need_apt+=(curl)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing system packages: ${need_apt[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
bash scripts/setup.sh test

.venv/bin/python -m pytest -p no:cacheprovider "$@"
