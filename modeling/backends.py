"""Inference backends: one padded batch of token ids in (numpy int64), the model's named outputs out (numpy float32).

- `TorchBackend`: the loaded transformers model, optionally under bfloat16 autocast.
- `OnnxBackend`: an exported graph (`python -m modeling.export_onnx`) on ONNX Runtime's CPU provider, float32
  (`onnx`) or dynamically quantized int8 (`onnx-int8`).

`auto` (the default) picks one per model with `choose_backend`, from the machine and what the model folder carries.
Nothing here imports torch until the torch backend is used: the ONNX backends serve where torch is not installed.
"""

import contextlib
import importlib
import importlib.util
import json
import logging
import platform
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .cpu import cpu_flags
from .int8_recipe import RECIPE_FILE

logger = logging.getLogger(__name__)

ONNX_FOLDER = "onnx"
FP32_FILE = "model.onnx"
INT8_FILE = "model_int8.onnx"
INPUT_NAMES = ("input_ids", "attention_mask")
TORCH, ONNX_FP32, ONNX_INT8, AUTO = "torch", "onnx", "onnx-int8", "auto"
BACKENDS = (AUTO, TORCH, ONNX_FP32, ONNX_INT8)
ONNX_FILE_KINDS = {ONNX_FP32: "fp32", ONNX_INT8: "int8"}
DEFAULT_BACKEND = AUTO
AGREEMENT_BAR = 0.99  # top-1 answers the same as torch float32's (benchmarks/onnx_agreement.py)
MIN_CONFIRMATION_REVIEWS = 200  # fewer held-out reviews say too little about a 1% disagreement rate
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
VNNI_FLAGS = ("avx512_vnni", "avx_vnni")  # without them ONNX Runtime's int8 MatMuls take another kernel (u8s8 on AVX2)


def torch_installed() -> bool:
    return importlib.util.find_spec("torch") is not None


def onnx_paths(model_dir: str | Path) -> dict[str, Path]:
    """Where the exported files of a model folder live: {"fp32": .../onnx/model.onnx, "int8": .../model_int8.onnx}."""
    folder = Path(model_dir) / ONNX_FOLDER
    return {"fp32": folder / FP32_FILE, "int8": folder / INT8_FILE}


class TorchBackend:
    def __init__(self, model, output_names: tuple[str, ...], autocast_dtype=None):
        self.model = model
        self.output_names = output_names
        self.autocast_dtype = autocast_dtype
        self.device_type = model.device.type

    @property
    def description(self) -> str:
        return f"torch {'bf16' if self.autocast_dtype is not None else 'fp32'}"

    def autocast(self):
        import torch

        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.autocast_dtype)

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> dict[str, np.ndarray]:
        import torch

        with torch.inference_mode(), self.autocast():
            outputs = self.model(input_ids=torch.from_numpy(input_ids).to(self.model.device),
                                 attention_mask=torch.from_numpy(attention_mask).to(self.model.device))
            return {name: outputs[name].float().cpu().numpy() for name in self.output_names}


class OnnxBackend:
    """An ONNX Runtime session on the CPU; `threads` defaults to torch's thread count where torch is loaded, so
    `torch.set_num_threads` (or OMP_NUM_THREADS) governs both backends alike, and to ONNX Runtime's own choice where
    it is not."""

    device_type = "cpu"

    def __init__(self, path: str | Path, output_names: tuple[str, ...], threads: int | None = None):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or (sys.modules["torch"].get_num_threads() if "torch" in sys.modules
                                                   else 0)
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

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> dict[str, np.ndarray]:
        values = self.session.run(list(self.output_names), dict(zip(INPUT_NAMES, (input_ids, attention_mask))))
        return {name: value.astype(np.float32) for name, value in zip(self.output_names, values)}


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
    bf16: bool  # torch under bfloat16 autocast
    reason: str


def read_int8_recipe(int8_path: Path | None) -> dict | None:
    """The int8 graph's recipe, or None where there is none or it describes another graph."""
    from .int8_recipe import file_sha256

    recipe = int8_path.parent / RECIPE_FILE if int8_path is not None else None
    if recipe is None or not recipe.is_file():
        return None
    found = json.loads(recipe.read_text())
    if found.get("int8_sha256") != file_sha256(int8_path):
        logger.warning("%s describes another int8 graph than %s: not used", recipe, int8_path.name)
        return None
    return found


def choose_backend(repo_or_path: str, revision: str | None, flags: Sequence[str] | None = None,
                   cuda: bool | None = None) -> BackendChoice:
    """`--backend auto`: a rule from this machine's features and what the folder carries, meant to give the fastest
    backend whose answers meet the agreement bars. It rests on measurements on two CPUs (benchmarks/serving_speed.py
    and benchmarks/onnx_agreement.py, docs/RESULTS.md), not on a measurement where it runs.

    1. A CUDA GPU: torch on it, under bf16 autocast where the GPU has bf16.
    2. int8, where the folder's `onnx/int8_recipe.json` (for this very graph) agreed with float32 on at least 99% of
       the reviews that chose its float32 nodes and of at least 200 held-out ones that did not, measured on a CPU of
       this architecture with the same int8 kernels (VNNI or not). On the AVX-512 EPYC int8 was the fastest backend
       (4.95x the pipeline, torch bf16 3.46x); on the AMX Xeon torch bf16 is faster (1.96x, int8 1.78x), so there
       this rule would trade speed for int8's smaller memory.
    3. A CPU with native bf16 (AVX512-BF16 or AMX): torch under bf16 autocast, measured faster than ONNX float32 there
       and within the bars. Without native bf16 it is emulated and slow, so it is never picked.
    4. ONNX float32 where the folder has the export, else torch float32.

    Where torch is not installed, only the ONNX backends can serve: int8 on the terms of 2, else float32."""
    flags = set(cpu_flags() if flags is None else flags)
    has_torch = torch_installed()
    gpu = has_torch and importlib.import_module("torch").cuda.is_available()
    if gpu if cuda is None else cuda:
        return BackendChoice(TORCH, gpu and importlib.import_module("torch").cuda.is_bf16_supported(
                                 including_emulation=False),
                             "a CUDA GPU: torch on it")
    int8_path = find_onnx_file(repo_or_path, revision, ONNX_INT8)
    recipe = read_int8_recipe(int8_path)
    confirmed = (recipe or {}).get("confirmed_top1_agreement")
    if (confirmed is not None and confirmed >= AGREEMENT_BAR and recipe["top1_agreement"] >= AGREEMENT_BAR
            and recipe["confirmation_reviews"] >= MIN_CONFIRMATION_REVIEWS and flags and recipe["cpu_flags"]
            and recipe.get("machine") == platform.machine()):
        measured_vnni, vnni = bool(set(recipe["cpu_flags"]) & set(VNNI_FLAGS)), bool(flags & set(VNNI_FLAGS))
        if measured_vnni == vnni:
            return BackendChoice(ONNX_INT8, False, f"its int8 export agreed with float32 on {confirmed:.1%} of "
                                 f"{recipe['confirmation_reviews']} held-out reviews on a CPU "
                                 f"{'with' if vnni else 'without'} VNNI, like this one")
    native_bf16 = sorted(flags & set(NATIVE_BF16_FLAGS))
    if native_bf16 and has_torch:
        return BackendChoice(TORCH, True, f"this CPU computes bf16 natively ({', '.join(native_bf16)})")
    without = "torch is not installed" if not has_torch else "no native bf16"
    if find_onnx_file(repo_or_path, revision, ONNX_FP32) is not None:
        return BackendChoice(ONNX_FP32, False, f"{without} and no int8 export that agrees: ONNX float32")
    if not has_torch:
        raise ValueError(f"{repo_or_path} has no onnx/ export and torch is not installed: nothing can serve it "
                         "(install torch, or export it: python -m modeling.export_onnx FOLDER)")
    return BackendChoice(TORCH, False, "no native bf16 and no onnx/ export: torch float32")


def check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}: choose one of {', '.join(BACKENDS)}")
