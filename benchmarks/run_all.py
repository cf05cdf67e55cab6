"""Rerun every benchmark, then rewrite the README's results summary and docs/RESULTS.md from their JSON files.

    python -m benchmarks.run_all                 # every benchmark in full, bf16 where fast (hours on 2 cores)
    python -m benchmarks.run_all --quick         # fewer seeds, steps and rows: under an hour on 2 cores
    python -m benchmarks.run_all --report_only   # only redraw the figures, rewrite the README section and RESULTS.md

Kept multi-task runs with the same key are reused (benchmarks/run_cache.py); each benchmark's time goes to
run_all[_quick].json. The serving benchmarks measure trained folders with their ONNX export (`SERVING_*` below).
Each benchmark writes JSON under benchmarks/results/; `python -m reporting.results` turns it into Markdown and figures.
"""

import argparse
import subprocess
import sys
import time

from benchmarks.common import REPO_ROOT, bf16_training_flags, command_line, load_result, write_json

# The trained folders the serving benchmarks measure: scripts/demo.sh's multi-task model, and a fine-tuned topic
# classifier with its dataset (README, "Serving on ONNX Runtime"), each exported with python -m modeling.export_onnx.
SERVING_MULTITASK_MODEL, SERVING_TOPIC_MODEL = "out/multitask", "out/topic_finetune"
SERVING_TOPIC_DATASET = "out/topics"


def benchmark_commands(quick: bool) -> list[tuple[str, list[str]]]:
    """(benchmark module, its arguments) in run order."""
    flag = ["--quick"] if quick else []
    return [
        ("data_prep_speed", ["--rows", "100000", "1000000", "3000000"]),
        ("data_prep_speed", ["--labelling", "--rows", *(["5000", "10000", "--output_name", "labelling_speed_quick"]
                                                        if quick else ["10000", "100000", "300000"])]),
        ("onnx_agreement", ["--multitask_model", SERVING_MULTITASK_MODEL, "--topic_model", SERVING_TOPIC_MODEL,
                            "--topic_dataset", SERVING_TOPIC_DATASET]),
        ("serving_speed", ["--multitask_model", SERVING_MULTITASK_MODEL, "--threads", "1", "2",
                           *(["--num_reviews", "128", "--rounds", "2"] if quick else [])]),
        ("training_speed", flag),
        ("topic_validity", ["--finetune_train_samples", "2000"] if quick else []),
        ("multitask_quality", [*flag, *(["--bf16"] if bf16_training_flags() else [])]),
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="Every benchmark in its quick mode")
    parser.add_argument("--report_only", action="store_true", help="Run nothing: figures and Markdown from the JSON")
    arguments = parser.parse_args()
    if not arguments.report_only:
        started, seconds = time.perf_counter(), {}
        for benchmark, benchmark_arguments in benchmark_commands(arguments.quick):
            command = command_line(benchmark, benchmark_arguments)
            print(f"$ {command}", flush=True)
            command_started = time.perf_counter()
            subprocess.run([sys.executable, "-m", f"benchmarks.{benchmark}", *benchmark_arguments], cwd=REPO_ROOT,
                           check=True)
            seconds[command] = round(time.perf_counter() - command_started)
        quality = load_result("multitask_quality_quick" if arguments.quick else "multitask_quality")
        write_json("run_all_quick" if arguments.quick else "run_all", {
            "command": command_line("run_all", ["--quick"] if arguments.quick else []),
            "wall_seconds": round(time.perf_counter() - started), "seconds_per_benchmark": seconds,
            "multitask_runs": quality["runs_done"],
            "multitask_runs_kept_from_earlier": quality["runs_kept_from_earlier"],
        })
    subprocess.run([sys.executable, "-m", "reporting.results", *(["--quick"] if arguments.quick else [])],
                   cwd=REPO_ROOT, check=True)


if __name__ == "__main__":
    main()
