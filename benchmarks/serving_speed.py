"""Serving speed: the app's predict path on each backend against `transformers.pipeline` on the same trained model,
at batch 1 and 32, on real reviews, with 1 and 2 threads.

    python -m modeling.export_onnx out/multitask                       # once: the onnx/ the ONNX backends run
    python -m benchmarks.serving_speed --multitask_model out/multitask --threads 1 2

Backends: torch fp32, torch bf16 autocast, ONNX Runtime fp32 and ONNX Runtime int8 (`modeling.backends`); a folder
without onnx/ is measured on the torch backends only. For each thread count and set of real reviews:
- batch 1: p50 / p95 latency and reviews/s of one review per call through the app's whole `/rating_age` function,
  against `pipe(review)`;
- batch 32: reviews/s of `pipe(reviews, batch_size=32)` against the app given the same reviews as requests of 32
  (what the queue hands it), by wall clock and by the process's CPU time (on a shared machine CPU time is what a
  quiet core would take); methods alternate within each round and the median round counts;
- agreement with the pipeline's answers on those reviews (the agreement bars on held-out splits are
  benchmarks/onnx_agreement.py's).
Also, per backend in a fresh process: seconds from process start to the first answer and peak RSS while it serves the
reviews at batch 32 (the ONNX backends where torch is not installed, as on a `--without_torch` Space); and the model
file sizes. Writes `serving_speed.json` under --output_dir.
"""

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

import app
from benchmarks.common import (
    REPO_ROOT, RESULTS_DIR, amazon_files, clothing_texts, command_line, cpu_name, site_packages_without_torch,
)
from benchmarks.onnx_agreement import BACKENDS, result_name
from modeling import backends
from modeling.cpu import cpu_flags
from modeling.export_onnx import onnx_paths
from modeling.serving import RatingAgeModel

ONNX_BACKENDS = ("onnx", "onnx_int8")
PIPELINE = "pipeline"


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--multitask_model", required=True, help="Trained multi-task folder (with onnx/ for ONNX).")
    parser.add_argument("--text_sets", nargs="+", default=["clothing", "amazon"], choices=["clothing", "amazon"])
    parser.add_argument("--num_reviews", type=int, default=256, help="Reviews per set for the throughput runs.")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--latency_reviews", type=int, default=40, help="Single-review calls per method.")
    parser.add_argument("--rounds", type=int, default=3, help="Throughput rounds; the median counts.")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch and ONNX Runtime threads.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output_dir", type=Path, default=RESULTS_DIR)
    return parser.parse_args(argv)


def real_reviews(text_set: str, count: int, seed: int) -> list[str]:
    """A seeded sample of non-empty review texts: the clothing test split, or the shared Amazon files."""
    texts = clothing_texts("test") if text_set == "clothing" else pd.concat(
        [pd.read_csv(path, usecols=["review"])["review"] for path in amazon_files()]).dropna().astype(str)
    return random.Random(seed).sample([text for text in texts if text.strip()], count)


def available_backends(folder: str) -> list[str]:
    has_onnx = all(path.is_file() for path in onnx_paths(folder).values())
    return [name for name in BACKENDS if has_onnx or name not in ONNX_BACKENDS]


def load_backends(folder: str, names: list[str], batch_size: int, threads: int) -> dict[str, RatingAgeModel]:
    """The app's model on each backend; the torch ones share one pipeline (one copy of the weights)."""
    torch_model = RatingAgeModel.load(folder, batch_size=batch_size)
    served = {}
    for name in names:
        backend, autocast_dtype = BACKENDS[name]
        if backend == backends.TORCH:
            served[name] = RatingAgeModel.from_pipeline(torch_model.pipeline, batch_size=batch_size,
                                                         autocast_dtype=autocast_dtype)
        else:
            kind = backends.ONNX_FILE_KINDS[backend]
            served[name] = RatingAgeModel.from_pipeline(torch_model.pipeline, batch_size=batch_size,
                                                         onnx_path=onnx_paths(folder)[kind], threads=threads)
    return served


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def alternating(paths: dict, rounds: int, arguments=lambda index: ()) -> tuple[dict, dict]:
    """Wall-clock and CPU seconds of this process for each path's call in each round, the paths in a new order each
    round so that load on a shared machine hits all alike."""
    wall, cpu = {name: [] for name in paths}, {name: [] for name in paths}
    order = list(paths)
    for index in range(rounds):
        random.Random(index).shuffle(order)
        for name in order:
            started, started_cpu = time.perf_counter(), time.process_time()
            paths[name](*arguments(index))
            wall[name].append(time.perf_counter() - started)
            cpu[name].append(time.process_time() - started_cpu)
    return wall, cpu


def single_review_latency(served: dict[str, RatingAgeModel], text_pipeline, reviews: list[str], calls: int) -> dict:
    """Milliseconds per single-review call through each path (the app's whole `/rating_age` function), one review
    after another."""
    paths = {
        PIPELINE: lambda review: text_pipeline(review),
        **{name: (lambda review, model=model: app.rating_age_endpoint(model, None, [review]))
           for name, model in served.items()},
    }
    for review in reviews[:3]:  # warm-up
        for call in paths.values():
            call(review)
    wall, cpu = alternating(paths, calls, lambda index: (reviews[index % len(reviews)],))
    return {
        name: {"p50_ms": 1000 * statistics.median(wall[name]), "p95_ms": 1000 * percentile(wall[name], 0.95),
               "p50_cpu_ms": 1000 * statistics.median(cpu[name]), "reviews_per_s": len(wall[name]) / sum(wall[name])}
        for name in paths
    }


def throughput(served: dict[str, RatingAgeModel], text_pipeline, reviews: list[str], batch_size: int,
               rounds: int) -> dict:
    """Reviews/s of each path at `batch_size`, by wall clock and by CPU time (medians over rounds). The app gets the
    reviews as requests of `batch_size`, as the queue hands them over."""
    blocks = [reviews[start : start + batch_size] for start in range(0, len(reviews), batch_size)]
    paths = {
        PIPELINE: lambda: text_pipeline(reviews, batch_size=batch_size),
        **{name: (lambda model=model: [model.predict(block) for block in blocks]) for name, model in served.items()},
    }
    for call in paths.values():  # warm-up (ONNX Runtime plans each new shape once)
        call()
    wall, cpu = alternating(paths, rounds)
    for name in paths:
        rounds_shown = ", ".join(f"{len(reviews) / seconds:.1f}" for seconds in wall[name])
        print(f"  {name:12s} reviews/s per round: {rounds_shown}", flush=True)
    return {
        name: {"reviews_per_s": statistics.median(len(reviews) / seconds for seconds in wall[name]),
               "reviews_per_cpu_s": statistics.median(len(reviews) / seconds for seconds in cpu[name]),
               "rounds_reviews_per_s": [len(reviews) / seconds for seconds in wall[name]]}
        for name in paths
    }


def agreement_with_pipeline(model: RatingAgeModel, pipeline_results: list[dict], reviews: list[str]) -> dict:
    """How far the app's answers are from the pipeline's (ages are rounded to 0.1 year by both)."""
    results = model.predict(reviews)
    return {
        "same_rating": sum(m["rating"] == t["rating"] for m, t in zip(results, pipeline_results)) / len(reviews),
        "max_rating_probability_difference": max(
            abs(mine["rating_scores"][label] - theirs["rating_scores"][label])
            for mine, theirs in zip(results, pipeline_results) for label in theirs["rating_scores"]),
        "mean_age_difference_years": statistics.mean(abs(m["age"] - t["age"]) for m, t in zip(results, pipeline_results)),
    }


def file_sizes_mb(folder: str) -> dict:
    paths = {"torch": Path(folder) / "model.safetensors", **{
        name: onnx_paths(folder)[backends.ONNX_FILE_KINDS[BACKENDS[name][0]]] for name in ONNX_BACKENDS}}
    return {name: round(path.stat().st_size / 1e6, 1) for name, path in paths.items() if path.is_file()}


# A fresh process that loads one backend (or the pipeline), answers one review, then serves the rest at batch 32. The
# ONNX backends run where torch is not installed (this environment's packages less torch), as a Space written with
# `python -m modeling.space FOLDER --without_torch` would: nothing there can load torch.
FRESH_PROCESS = """
import json, sys, time
from benchmarks.common import own_peak_rss_mb
name, folder, batch_size, threads, reviews = {name!r}, {folder!r}, {batch_size}, {threads}, json.load(open({reviews!r}))
if name in ("pipeline", "torch", "torch_bf16"):
    import torch
    torch.set_num_threads(threads)
if name == "pipeline":
    from modeling import load_rating_age_pipeline
    model = load_rating_age_pipeline(folder)
    answer = lambda texts: model(texts, batch_size=batch_size)
else:
    from modeling.serving import RatingAgeModel
    backend = {{"torch": "torch", "torch_bf16": "torch", "onnx": "onnx", "onnx_int8": "onnx-int8"}}[name]
    autocast_dtype = torch.bfloat16 if name == "torch_bf16" else None
    model = RatingAgeModel.load(folder, backend=backend, autocast_dtype=autocast_dtype, batch_size=batch_size,
                                threads=threads)
    answer = model.predict
answer(reviews[:1])
first_answer = time.time()
for start in range(0, len(reviews), batch_size):
    answer(reviews[start:start + batch_size])
print("RESULT", json.dumps({{"first_answer": first_answer, "peak_rss_mb": round(own_peak_rss_mb()),
                            "torch_loaded": "torch" in sys.modules}}))
"""


def fresh_process_figures(args: argparse.Namespace, names: list[str], scratch: Path) -> dict:
    """Per backend, in a fresh process: seconds from process start to the first answer, and peak RSS."""
    reviews = scratch / "reviews.json"
    reviews.write_text(json.dumps(real_reviews("clothing", args.num_reviews, args.seed)))
    without_torch = site_packages_without_torch(scratch / "site-packages")
    figures = {}
    for name in [PIPELINE, *names]:
        code = FRESH_PROCESS.format(name=name, folder=str(Path(args.multitask_model).resolve()),
                                    batch_size=args.batch_size, threads=args.threads[-1], reviews=str(reviews))
        # -S: no site-packages but PYTHONPATH's; for ONNX that is the packages less torch.
        path = [str(REPO_ROOT), str(without_torch)] if name in ONNX_BACKENDS else [str(REPO_ROOT)]
        command = [sys.executable, "-s", "-S", "-c", code] if name in ONNX_BACKENDS else [sys.executable, "-c", code]
        started = time.time()
        completed = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT, check=False,
                                   env={**os.environ, "TOKENIZERS_PARALLELISM": "false",
                                        "PYTHONPATH": os.pathsep.join(path)})
        if completed.returncode != 0:
            raise RuntimeError(f"the fresh {name} process failed:\n{completed.stderr[-3000:]}")
        result = json.loads(completed.stdout.split("RESULT")[-1])
        figures[name] = {"cold_start_s": round(result["first_answer"] - started, 2),
                         "peak_rss_mb": result["peak_rss_mb"], "torch_loaded": result["torch_loaded"]}
        print(f"  {name}: {figures[name]}", flush=True)
    return figures


def measure(args: argparse.Namespace, names: list[str], threads: int) -> dict:
    torch.set_num_threads(threads)
    served = load_backends(args.multitask_model, names, args.batch_size, threads)
    text_pipeline = served["torch"].pipeline
    per_set = {}
    for text_set in args.text_sets:
        reviews = real_reviews(text_set, args.num_reviews, args.seed)
        print(f"{threads} thread(s), {text_set}: {len(reviews)} real reviews", flush=True)
        latency = single_review_latency(served, text_pipeline, reviews, args.latency_reviews)
        print("  p50 latency (ms): " + ", ".join(f"{name} {value['p50_ms']:.1f}" for name, value in latency.items()))
        speeds = throughput(served, text_pipeline, reviews, args.batch_size, args.rounds)
        pipeline_results = text_pipeline(reviews, batch_size=args.batch_size)
        per_set[text_set] = {
            "latency": latency,
            "throughput": speeds,
            "throughput_speedup": {name: speed["reviews_per_s"] / speeds[PIPELINE]["reviews_per_s"]
                                   for name, speed in speeds.items()},
            "throughput_speedup_cpu_time": {name: speed["reviews_per_cpu_s"] / speeds[PIPELINE]["reviews_per_cpu_s"]
                                            for name, speed in speeds.items()},
            "agreement_with_pipeline": {name: agreement_with_pipeline(model, pipeline_results, reviews)
                                        for name, model in served.items()},
        }
        print(json.dumps({name: round(value, 2) for name, value in per_set[text_set]["throughput_speedup"].items()}))
    return per_set


def main(argv: list[str] | None = None) -> None:
    args = parse_arguments(argv)
    names = available_backends(args.multitask_model)
    if len(names) < len(BACKENDS):
        print(f"{args.multitask_model} has no onnx/ export: measuring the torch backends only "
              f"(python -m modeling.export_onnx {args.multitask_model})", flush=True)
    results = {
        "command": command_line("serving_speed", sys.argv[1:] if argv is None else argv),
        "model": args.multitask_model, "batch_size": args.batch_size, "num_reviews": args.num_reviews,
        "latency_reviews": args.latency_reviews, "cpu": cpu_name(), "cpu_flags": cpu_flags(), "cpu_cores": os.cpu_count(),
        "torch": torch.__version__, "onnxruntime": __import__("onnxruntime").__version__,
        "backends": names, "file_sizes_mb": file_sizes_mb(args.multitask_model),
        "load_average_before": os.getloadavg(), "threads": {},
    }
    choice = backends.choose_backend(args.multitask_model, None)
    results["auto_choice"] = {"name": result_name(choice), "reason": choice.reason}
    for threads in args.threads:
        results["threads"][str(threads)] = measure(args, names, threads)
    print(f"cold start and peak RSS per backend ({args.threads[-1]} thread(s), fresh process each):", flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        results["fresh_process"] = fresh_process_figures(args, names, Path(scratch))
    results["load_average_after"] = os.getloadavg()
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / "serving_speed.json").write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {args.output_dir / 'serving_speed.json'}")


if __name__ == "__main__":
    main()
