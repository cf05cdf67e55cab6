#!/usr/bin/env bash
# Sets up .venv and runs the test suite (offline: tiny models built in fixtures, real data from ../shared/data).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
HF_HUB_OFFLINE=1 .venv/bin/python -m pytest -q "$@"
