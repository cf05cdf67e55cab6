#!/usr/bin/env bash
# Prints the `pip install` arguments for torch on this machine. The rule: with an NVIDIA GPU (nvidia-smi -L works),
# PyPI's default build, which is CUDA; without one, the CPU build from PyTorch's CPU index, because PyPI's default
# Linux wheel is a multi-GB CUDA build that a CPU machine cannot use. TORCH_INDEX_URL overrides the index. Where the
# CPU index cannot be reached (a machine that sees only a package mirror), the configured index is used, with a
# warning: pip would otherwise retry the unreachable index for every package.
set -euo pipefail
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
CPU_INDEX=${TORCH_CPU_INDEX_URL:-https://download.pytorch.org/whl/cpu}
if [ -n "${TORCH_INDEX_URL:-}" ]; then
  echo "torch==$TORCH_VERSION --extra-index-url $TORCH_INDEX_URL"
elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  echo "torch==$TORCH_VERSION"
elif python3 - "$CPU_INDEX" >/dev/null 2>&1 <<'PROBE'
import os, sys, urllib.parse, urllib.request
index = sys.argv[1].rstrip("/")
parts = urllib.parse.urlparse(index)
if parts.scheme == "file":  # a local index folder
    sys.exit(0 if os.path.isdir(os.path.join(parts.path, "torch")) else 1)
urllib.request.urlopen(index + "/torch/", timeout=5)
PROBE
then
  echo "torch==$TORCH_VERSION --extra-index-url $CPU_INDEX"
else
  echo "No NVIDIA GPU, and PyTorch's CPU index ($CPU_INDEX) cannot be reached: torch comes from the configured" \
    "index, which may be a multi-GB CUDA build (set TORCH_INDEX_URL to a CPU index to avoid it)" >&2
  echo "torch==$TORCH_VERSION"
fi
