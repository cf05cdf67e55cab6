"""Amazon data prep at scale: our `datasets` pipeline against a plain pandas pass (the original notebook's way), and
topic labelling (`--labelling`).

The shared Amazon files are replicated to N rows in Amazon Review Full's headerless `rating,title,review` format (in a
temporary folder, never in the repository); each pipeline then runs in its own process, stage by stage:

    read      CSV -> table (datasets: Arrow on disk, memory-mapped; pandas: a DataFrame in memory)
    filter    reviews without text dropped, Amazon mention filter (title or text, word boundary, any case)
    cleaning  transformer text + NMF text of the kept reviews (the same functions in both pipelines)
    fit       (--labelling: `python -m data_prep.topics --no_mention_filter`) read, clean, split, TF-IDF + NMF and
              topic mapping on at most --max_topic_fit_reviews training reviews
    label     every review of every split decided: its topic mixture and its sentence embedding

Reported per stage: seconds, rows/s and peak memory of the process tree (common.PeakMemory), and datasets/pandas
ratios. Results go to benchmarks/results/data_prep_speed.json (--labelling: labelling_speed.json).

    python -m benchmarks.data_prep_speed --rows 100000 1000000 3000000
    python -m benchmarks.data_prep_speed --labelling --rows 10000 100000 300000
"""

import argparse
import csv
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import DATA_DIR, REPO_ROOT, PeakMemory, amazon_files, command_line, write_json
from data_prep.topic_mapping import EMBEDDING_PRECISIONS, embedding_device, resolved_precision

STAGES = ("read", "filter", "cleaning")
PIPELINES = ("datasets", "pandas")
TARGET_SECONDS_3M, TARGET_RSS_MB = 300, 4096
TARGET_LABELLING_SECONDS = 300  # the 92,715 shared reviews, on 2 cores (issue 27)


def write_replicated_file(rows: int, folder: Path) -> Path:
    """The shared Amazon reviews repeated (in order) up to `rows` rows, headerless `rating,title,review`."""
    path = folder / f"amazon_review_full_{rows}.csv"
    if path.is_file():
        return path
    source_rows = []
    for source in amazon_files():
        with gzip.open(source, "rt", encoding="utf-8", newline="") as handle:
            source_rows += [(row["rating"], row["title"], row["review"]) for row in csv.DictReader(handle)]
    if not source_rows:
        raise FileNotFoundError(f"No amazon_*.csv.gz in {DATA_DIR} (set REVIEW_DATA_DIR)")
    partial = path.with_suffix(".partial")
    with open(partial, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, quoting=csv.QUOTE_ALL)  # Review Full quotes every field
        for start in range(0, rows, len(source_rows)):
            writer.writerows(source_rows[: min(len(source_rows), rows - start)])
    partial.replace(path)
    return path


def run_stages(pipeline: str, path: str, num_proc: int, precision: str = "auto") -> dict:
    """One pipeline over one file, in this process; seconds, rows in/out and peak RSS per stage."""
    memory = PeakMemory()
    stages = {}

    def stage(name, function, rows_in):
        memory.reset()
        started = time.perf_counter()
        result = function()
        seconds = time.perf_counter() - started
        stages[name] = {"seconds": round(seconds, 4), "rows_in": rows_in, "rows_out": len(result),
                        "rows_per_second": round(rows_in / seconds), "peak_rss_mb": round(memory.peak_rss / 2**20),
                        "peak_anon_mb": round(memory.peak_anon / 2**20)}
        return result

    if pipeline == "datasets":
        from data_prep.amazon import clean_reviews, drop_reviews_without_text, filter_mentions, read_amazon_file

        reviews = stage("read", lambda: read_amazon_file(path, num_proc=num_proc), 0)
        stages["read"]["rows_in"] = len(reviews)
        stages["read"]["rows_per_second"] = round(len(reviews) / stages["read"]["seconds"])
        kept = stage("filter", lambda: filter_mentions(drop_reviews_without_text(reviews), num_proc=num_proc),
                     len(reviews))
        stage("cleaning", lambda: clean_reviews(kept, num_proc=num_proc), len(kept))
    elif pipeline == "labelling":
        from datasets import concatenate_datasets

        from data_prep.topics import TopicLabelArguments, fit_topics, label_reviews

        _, splits, topic_model, _ = stage("fit", lambda: fit_topics(
            [path], TopicLabelArguments(mention_filter=False, embedding_precision=precision), num_proc=num_proc), 0)
        reviews = sum(map(len, splits.values()))
        stages["fit"].update(rows_in=reviews, rows_out=reviews,
                             rows_per_second=round(reviews / stages["fit"]["seconds"]))
        stage("label", lambda: concatenate_datasets([label_reviews(split, topic_model, num_proc=num_proc)[0]
                                                     for split in splits.values()]), reviews)
    else:
        import pandas as pd

        from data_prep.amazon import AMAZON_COLUMNS, DEFAULT_MENTION_PATTERN
        from data_prep.text import clean_for_topics, join_title_and_body

        frame = stage("read", lambda: pd.read_csv(path, header=None, names=AMAZON_COLUMNS, dtype=str,
                                                  keep_default_na=False), 0)
        stages["read"]["rows_in"] = len(frame)
        stages["read"]["rows_per_second"] = round(len(frame) / stages["read"]["seconds"])

        def mention_filter():
            has_text = (frame["title"].str.strip() != "") | (frame["review"].str.strip() != "")
            mentions = (frame["title"].str.contains(DEFAULT_MENTION_PATTERN, case=False, regex=True)
                        | frame["review"].str.contains(DEFAULT_MENTION_PATTERN, case=False, regex=True))
            return frame[has_text & mentions]

        kept = stage("filter", mention_filter, len(frame))

        def clean():
            cleaned = pd.DataFrame({"rating": pd.to_numeric(kept["rating"], errors="coerce")})
            cleaned["text"] = [join_title_and_body(t, r) for t, r in zip(kept["title"], kept["review"])]
            cleaned["nmf_text"] = (kept["title"] + " " + kept["review"]).apply(clean_for_topics)
            return cleaned

        stage("cleaning", clean, len(kept))
    memory.stop()
    return stages


def measure(pipeline: str, path: Path, num_proc: int, cache_dir: Path, precision: str = "auto") -> dict:
    """`run_stages` in a fresh process with an empty datasets cache, so nothing is read back from a previous run."""
    shutil.rmtree(cache_dir, ignore_errors=True)
    env = {**os.environ, "HF_DATASETS_CACHE": str(cache_dir), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO_ROOT),
           "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.data_prep_speed", "--child", pipeline, str(path), "--num_proc",
         str(num_proc), "--embedding_precision", precision],
        capture_output=True, text=True, env=env, cwd=REPO_ROOT,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"{pipeline} on {path} failed:\n{completed.stderr[-4000:]}")
    stages = json.loads(completed.stdout.strip().splitlines()[-1])
    shutil.rmtree(cache_dir, ignore_errors=True)
    return {"stages": stages, "process_seconds": round(time.perf_counter() - started, 1),
            "total_seconds": round(sum(s["seconds"] for s in stages.values()), 4),
            "peak_rss_mb": max(s["peak_rss_mb"] for s in stages.values()),
            "peak_anon_mb": max(s["peak_anon_mb"] for s in stages.values())}


def ratios(ours: dict, baseline: dict) -> dict:
    """datasets / pandas per stage and in total: time (below 1 = faster) and peak memory (below 1 = less)."""
    def ratio(mine: dict, theirs: dict, time_key: str) -> dict:
        return {name: round(mine[key] / theirs[key], 2)
                for name, key in (("time", time_key), ("peak_rss", "peak_rss_mb"), ("peak_anon", "peak_anon_mb"))}

    return {**{name: ratio(ours["stages"][name], baseline["stages"][name], "seconds") for name in STAGES},
            "total": ratio(ours, baseline, "total_seconds")}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=None, help="(default: 100000 1000000; --labelling: "
                        "10000 100000 300000)")
    parser.add_argument("--labelling", action="store_true", help="Measure topic labelling (data_prep.topics) instead.")
    parser.add_argument("--embedding_precision", default="auto", choices=EMBEDDING_PRECISIONS,
                        help="The labeller's, for --labelling (data_prep.topics --embedding_precision).")
    parser.add_argument("--num_proc", type=int, default=1,
                        help="Processes for the datasets map steps (1: none; 2 gained nothing on a shared 2-core box).")
    parser.add_argument("--work_dir", default=None, help="Where the replicated CSVs go (default: a temporary folder).")
    parser.add_argument("--keep_files", action="store_true", help="Keep the replicated CSVs for another run.")
    parser.add_argument("--output_name", default=None, help="(default: data_prep_speed; --labelling: labelling_speed)")
    parser.add_argument("--child", nargs=2, metavar=("PIPELINE", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    pipelines = ("labelling",) if args.labelling else PIPELINES
    rows_list = args.rows or ([10_000, 100_000, 300_000] if args.labelling else [100_000, 1_000_000])
    if args.child:
        print(json.dumps(run_stages(args.child[0], args.child[1], args.num_proc if args.num_proc > 1 else None,
                                    args.embedding_precision)))
        return

    work_dir = Path(args.work_dir or tempfile.mkdtemp(prefix="amazon_speed_"))
    work_dir.mkdir(parents=True, exist_ok=True)
    if REPO_ROOT in work_dir.resolve().parents:
        raise ValueError(f"--work_dir {work_dir} is inside the repository; the replicated data must stay outside")
    import datasets
    import pandas

    payload = {
        "command": command_line("data_prep_speed", sys.argv[1:]), "num_proc": args.num_proc, "results": [],
        "versions": {"datasets": datasets.__version__, "pandas": pandas.__version__},
        **({"embedding_precision": args.embedding_precision,
            "resolved_precision": resolved_precision(args.embedding_precision, embedding_device())}
           if args.labelling else {}),
        "input": "shared/data/amazon_*.csv.gz replicated in order, headerless rating,title,review, all fields quoted",
        "targets": {"seconds_for_shared_reviews": TARGET_LABELLING_SECONDS} if args.labelling else {
            "seconds_for_3M_filter_and_cleaning": TARGET_SECONDS_3M, "peak_rss_mb": TARGET_RSS_MB}}
    try:
        for rows in rows_list:
            path = write_replicated_file(rows, work_dir)
            result = {"rows": rows, "file_mb": round(path.stat().st_size / 2**20)}
            for pipeline in pipelines:
                result[pipeline] = measure(pipeline, path, args.num_proc, work_dir / f"cache_{pipeline}",
                                           args.embedding_precision)
                print(f"{rows:>9,} rows  {pipeline:<8} " + "  ".join(
                    f"{name} {s['seconds']:6.1f}s {s['rows_per_second']:>9,}/s "
                    f"{s['peak_rss_mb']:>5}/{s['peak_anon_mb']:>5} MB" for name, s in result[pipeline]["stages"].items()
                ), flush=True)
            if pipelines == PIPELINES:
                result["datasets_over_pandas"] = ratios(result["datasets"], result["pandas"])
                print(f"{'':>9}       ratio    {json.dumps(result['datasets_over_pandas'])}", flush=True)
            payload["results"].append(result)
            if not args.keep_files:
                path.unlink()
            # after each size, so an interrupted run keeps what it measured
            path = write_json(args.output_name or ("labelling_speed" if args.labelling else "data_prep_speed"), payload)
    finally:
        if not args.keep_files and not args.work_dir:
            shutil.rmtree(work_dir, ignore_errors=True)
    print(f"Wrote {path}")


if __name__ == "__main__":
    main()
