"""Inference backends: one padded batch of token ids in, the model's named outputs out, as float32 CPU tensors.

- `TorchBackend`: the loaded transformers model, optionally under bfloat16 autocast.
- `OnnxBackend`: an exported graph (`python -m modeling.export_onnx`) on ONNX Runtime's CPU provider, float32
  (`onnx`) or dynamically quantized int8 (`onnx-int8`).
"""

import contextlib
import logging
from pathlib import Path

import torch

from .export_onnx import INPUT_NAMES, onnx_paths

logger = logging.getLogger(__name__)

TORCH, ONNX_FP32, ONNX_INT8 = "torch", "onnx", "onnx-int8"
BACKENDS = (TORCH, ONNX_FP32, ONNX_INT8)
ONNX_FILE_KINDS = {ONNX_FP32: "fp32", ONNX_INT8: "int8"}
# The fastest backend whose answers meet the agreement bars against torch float32 on the trained models
# (benchmarks/onnx_agreement.py and benchmarks/serving_speed.py; figures in docs/RESULTS.md). int8 is faster but
# gave the fp32 rating on 98.4% of held-out clothing reviews, under the 99% bar; tests/test_benchmarks.py checks
# this choice against the committed results.
DEFAULT_BACKEND = ONNX_FP32


class TorchBackend:
    def __init__(self, model, output_names: tuple[str, ...], autocast_dtype: torch.dtype | None = None):
        self.model = model
        self.output_names = output_names
        self.autocast_dtype = autocast_dtype
        self.device = model.device

    @property
    def description(self) -> str:
        return "torch bf16" if self.autocast_dtype == torch.bfloat16 else f"torch {self.autocast_dtype or 'fp32'}"

    def autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.inference_mode(), self.autocast():
            outputs = self.model(input_ids=input_ids.to(self.device), attention_mask=attention_mask.to(self.device))
            return {name: outputs[name].float().cpu() for name in self.output_names}


class OnnxBackend:
    """An ONNX Runtime session on the CPU; `threads` defaults to torch's thread count, so `torch.set_num_threads`
    (or OMP_NUM_THREADS) governs both backends alike."""

    device = torch.device("cpu")

    def __init__(self, path: str | Path, output_names: tuple[str, ...], threads: int | None = None):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle threads sleep instead of spinning: on a 2-vCPU Space spinning threads take the cores from the other
        # model (or torch) that runs next.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.path = Path(path)
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        found = {output.name for output in self.session.get_outputs()}
        if not set(output_names) <= found:
            raise ValueError(f"{path} gives outputs {sorted(found)}, not the {list(output_names)} this model needs")
        self.output_names = output_names

    @property
    def description(self) -> str:
        return f"onnxruntime {self.path.name}"

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        feeds = dict(zip(INPUT_NAMES, (input_ids.cpu().numpy(), attention_mask.cpu().numpy())))
        values = self.session.run(list(self.output_names), feeds)
        return {name: torch.from_numpy(value).float() for name, value in zip(self.output_names, values)}


def find_onnx_file(repo_or_path: str, revision: str | None, backend: str) -> Path | None:
    """The exported file the backend runs, from a local folder or the Hub repo's `onnx/`; None when there is none."""
    kind = ONNX_FILE_KINDS[backend]
    folder = Path(repo_or_path)
    if not folder.is_dir():
        from huggingface_hub import snapshot_download

        try:
            folder = Path(snapshot_download(repo_or_path, revision=revision, allow_patterns=["onnx/*"]))
        except Exception as error:  # the caller falls back to torch and says so
            logger.warning("Could not fetch onnx/ from %s: %s: %s", repo_or_path, type(error).__name__, error)
            return None
    path = onnx_paths(folder)[kind]
    return path if path.is_file() else None


def check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}: choose one of {', '.join(BACKENDS)}")
