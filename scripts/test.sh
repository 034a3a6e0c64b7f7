#!/usr/bin/env bash
# Newcomer command 2 (and what CI runs): install everything the tests need, then run the whole suite.
# The integration tier uses real parts: the chdb engine, real server processes, curl, Apache Kafka.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONDONTWRITEBYTECODE=1

need_apt=()
command -v curl >/dev/null || need_apt+=(curl)
command -v java >/dev/null || need_apt+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || need_apt+=(maven)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing system packages: ${need_apt[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
bash scripts/setup.sh test
# real Apache Kafka for the integration tier, resolved from Maven Central once (cached in ~/.cache/dealbeacon)
.venv/bin/dealbeacon kafka fetch > /dev/null

.venv/bin/python -m pytest -p no:cacheprovider "$@"
