#!/usr/bin/env bash
# Prints the `pip install` arguments for torch on this machine. The rule: with an NVIDIA GPU (nvidia-smi works),
# PyPI's default build, which is CUDA; without one, the CPU build from PyTorch's CPU index, because PyPI's default
# Linux wheel is a multi-GB CUDA build that a CPU machine cannot use. TORCH_INDEX_URL overrides the index.
set -euo pipefail
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
if [ -n "${TORCH_INDEX_URL:-}" ]; then
  echo "torch==$TORCH_VERSION --extra-index-url $TORCH_INDEX_URL"
elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  echo "torch==$TORCH_VERSION"
else
  echo "torch==$TORCH_VERSION --extra-index-url https://download.pytorch.org/whl/cpu"
fi
