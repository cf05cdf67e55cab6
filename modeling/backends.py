"""Inference backends: one padded batch of token ids in, the model's named outputs out, as float32 CPU tensors.

- `TorchBackend`: the loaded transformers model, optionally under bfloat16 autocast.
- `OnnxBackend`: an exported graph (`python -m modeling.export_onnx`) on ONNX Runtime's CPU provider, float32
  (`onnx`) or dynamically quantized int8 (`onnx-int8`).

`auto` (the default) picks one per model with `choose_backend`, from the machine and what the model folder carries.
"""

import contextlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from .cpu import cpu_flags
from .export_onnx import INPUT_NAMES, onnx_paths
from .int8_recipe import RECIPE_FILE

logger = logging.getLogger(__name__)

TORCH, ONNX_FP32, ONNX_INT8, AUTO = "torch", "onnx", "onnx-int8", "auto"
BACKENDS = (AUTO, TORCH, ONNX_FP32, ONNX_INT8)
ONNX_FILE_KINDS = {ONNX_FP32: "fp32", ONNX_INT8: "int8"}
DEFAULT_BACKEND = AUTO
AGREEMENT_BAR = 0.99  # top-1 answers the same as torch float32's (benchmarks/onnx_agreement.py)
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
VNNI_FLAGS = ("avx512_vnni", "avx_vnni")  # without them ONNX Runtime's int8 MatMuls take another kernel (u8s8 on AVX2)


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


@dataclass(frozen=True)
class BackendChoice:
    backend: str
    autocast_dtype: torch.dtype | None
    reason: str


def read_int8_recipe(int8_path: Path | None) -> dict | None:
    recipe = int8_path.parent / RECIPE_FILE if int8_path is not None else None
    return json.loads(recipe.read_text()) if recipe is not None and recipe.is_file() else None


def choose_backend(repo_or_path: str, revision: str | None, flags: Sequence[str] | None = None,
                   cuda: bool | None = None) -> BackendChoice:
    """`--backend auto`: the fastest backend whose answers meet the agreement bars, for this machine and this model
    (speeds and agreement: benchmarks/serving_speed.py and benchmarks/onnx_agreement.py, docs/RESULTS.md).

    1. A CUDA GPU: torch on it, under bf16 autocast where the GPU has bf16.
    2. int8, where the folder's `onnx/int8_recipe.json` agreed with float32 on at least 99% of the held-out reviews
       that chose none of its float32 nodes, on a CPU with the same int8 kernels as this one (VNNI or not): the
       fastest CPU backend.
    3. A CPU with native bf16 (AVX512-BF16 or AMX): torch under bf16 autocast, measured faster than ONNX float32 there
       and within the bars. Without native bf16 it is emulated and slow, so it is never picked.
    4. ONNX float32 where the folder has the export, else torch float32."""
    flags = set(cpu_flags() if flags is None else flags)
    if torch.cuda.is_available() if cuda is None else cuda:
        bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        return BackendChoice(TORCH, torch.bfloat16 if bf16 else None, "a CUDA GPU: torch on it")
    int8_path = find_onnx_file(repo_or_path, revision, ONNX_INT8)
    recipe = read_int8_recipe(int8_path)
    confirmed = (recipe or {}).get("confirmed_top1_agreement")
    if confirmed is not None and confirmed >= AGREEMENT_BAR:
        measured_vnni, vnni = bool(set(recipe["cpu_flags"]) & set(VNNI_FLAGS)), bool(flags & set(VNNI_FLAGS))
        if measured_vnni == vnni:
            return BackendChoice(ONNX_INT8, None, f"its int8 export agreed with float32 on {confirmed:.1%} of "
                                 f"{recipe['confirmation_reviews']} held-out reviews on a CPU "
                                 f"{'with' if vnni else 'without'} VNNI, like this one")
    native_bf16 = sorted(flags & set(NATIVE_BF16_FLAGS))
    if native_bf16:
        return BackendChoice(TORCH, torch.bfloat16, f"this CPU computes bf16 natively ({', '.join(native_bf16)})")
    if find_onnx_file(repo_or_path, revision, ONNX_FP32) is not None:
        return BackendChoice(ONNX_FP32, None, "no native bf16 and no int8 export that agrees: ONNX float32")
    return BackendChoice(TORCH, None, "no native bf16 and no onnx/ export: torch float32")


def check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}: choose one of {', '.join(BACKENDS)}")
