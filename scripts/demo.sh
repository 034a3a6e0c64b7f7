#!/usr/bin/env bash
# Newcomer command 1: set up and run embedded mode with a demo room and simulated traffic.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/dealbeacon up "$@"
