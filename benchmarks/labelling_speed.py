"""Topic labelling at scale: what `python -m data_prep.topics --no_mention_filter` does, on the shared Amazon files
replicated to N rows (data_prep_speed's files), each size in a fresh process with an empty datasets cache:

    fit     read and clean, split, TF-IDF + NMF on the train split (at most --max_topic_fit_reviews of it), topic
            mapping (the typical reviews embedded)
    label   every review of every split decided (`label_reviews`: its topic mixture and its sentence embedding)

Reported per size and stage: seconds, reviews/s and peak memory of the process tree (common.PeakMemory), and the time
of 3,000,000 reviews projected from the measured slope. Results: benchmarks/results/labelling_speed.json.

    python -m benchmarks.labelling_speed --rows 10000 100000 300000
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import REPO_ROOT, PeakMemory, command_line, write_json
from benchmarks.data_prep_speed import measure, write_replicated_file

SHARED_REVIEWS, SEED_REVIEWS, FULL_REVIEWS = 92_715, 112_106, 3_000_000
TARGET_SECONDS_SHARED = 300


def run_stages(path: str, num_proc: int | None) -> dict:
    """Labelling of one file, in this process: seconds, reviews and peak memory of each stage."""
    from data_prep.topics import TopicLabelArguments, fit_topics, label_reviews

    memory, stages = PeakMemory(), {}
    started = time.perf_counter()
    reviews, splits, topic_model, _ = fit_topics([path], TopicLabelArguments(mention_filter=False), num_proc=num_proc)
    stages["fit"] = {"seconds": time.perf_counter() - started, "reviews": len(reviews.dataset)}
    stages["fit"].update(peak_rss_mb=round(memory.peak_rss / 2**20), peak_anon_mb=round(memory.peak_anon / 2**20))
    memory.reset()
    started = time.perf_counter()
    for split in splits.values():
        label_reviews(split, topic_model, num_proc=num_proc)
    stages["label"] = {"seconds": time.perf_counter() - started, "reviews": sum(map(len, splits.values())),
                       "peak_rss_mb": round(memory.peak_rss / 2**20), "peak_anon_mb": round(memory.peak_anon / 2**20)}
    memory.stop()
    for stage in stages.values():
        stage.update(seconds=round(stage["seconds"], 1), reviews_per_second=round(stage["reviews"] / stage["seconds"], 1))
    return stages


def projection(results: list[dict]) -> dict:
    """Seconds of the whole labelling (fit + label) at the shared files', the seed's and Review Full's sizes, from a
    straight line through the measured (rows, seconds)."""
    rows = [result["rows"] for result in results]
    seconds = [result["labelling"]["total_seconds"] for result in results]
    slope, intercept = np.polyfit(rows, seconds, 1) if len(rows) > 1 else (seconds[0] / rows[0], 0.0)
    return {"seconds_per_review": round(float(slope), 5), "fixed_seconds": round(float(intercept), 1),
            **{f"seconds_for_{count}": round(float(intercept + slope * count))
               for count in (SHARED_REVIEWS, SEED_REVIEWS, FULL_REVIEWS)}}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000, 300_000])
    parser.add_argument("--num_proc", type=int, default=1, help="Processes for the datasets steps (1: none).")
    parser.add_argument("--work_dir", default=None, help="Where the replicated CSVs go (default: a temporary folder).")
    parser.add_argument("--child", nargs=2, metavar=("PIPELINE", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_stages(args.child[1], args.num_proc if args.num_proc > 1 else None)))
        return

    work_dir = Path(args.work_dir or tempfile.mkdtemp(prefix="labelling_speed_"))
    work_dir.mkdir(parents=True, exist_ok=True)
    if REPO_ROOT in work_dir.resolve().parents:
        raise ValueError(f"--work_dir {work_dir} is inside the repository; the replicated data must stay outside")
    results = []
    for rows in args.rows:
        path = write_replicated_file(rows, work_dir)
        result = {"rows": rows, "labelling": measure("labelling", path, args.num_proc, work_dir / "cache",
                                                     module="labelling_speed")}
        path.unlink()
        print(f"{rows:>9,} rows  " + "  ".join(
            f"{name} {s['seconds']:7.1f}s {s['reviews_per_second']:>8,}/s {s['peak_rss_mb']:>5}/{s['peak_anon_mb']:>5} MB"
            for name, s in result["labelling"]["stages"].items()), flush=True)
        results.append(result)
        path = write_json("labelling_speed", {  # after each size, so an interrupted run keeps what it measured
            "what": "Topic labelling (data_prep.topics, no mention filter): fit topics, then decide every review",
            "command": command_line("labelling_speed", sys.argv[1:]), "num_proc": args.num_proc,
            "input": "shared/data/amazon_*.csv.gz replicated in order (benchmarks.data_prep_speed), headerless",
            "targets": {"seconds_for_shared_reviews": TARGET_SECONDS_SHARED, "shared_reviews": SHARED_REVIEWS,
                        "peak_anon_flat_from_rows": [100_000, 300_000]},
            "results": results, "projection": projection(results),
        })
    print(f"Wrote {path}")


if __name__ == "__main__":
    main()
