#!/usr/bin/env python
"""Regenerate every benchmark and the README's results section from their JSON files.

    python benchmarks/run_all.py            # full: 3 seeds, 3 epochs, all rows (hours on 2 CPU cores; use a GPU)
    python benchmarks/run_all.py --quick    # fewer seeds, steps and rows: under an hour on 2 cores
    python benchmarks/run_all.py --report_only   # rebuild the README section from the JSON already there

Each benchmark writes JSON + PNG under benchmarks/results/; the README section between the `results` markers is
rewritten from those files, so every figure in it traces back to a file this command wrote.
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import REPO_ROOT, RESULTS_DIR, machine_facts  # noqa: E402
from benchmarks.multitask_quality import markdown as multitask_table  # noqa: E402

START_MARKER, END_MARKER = "<!-- results:start -->", "<!-- results:end -->"


def benchmark_commands(quick: bool) -> list[list[str]]:
    flag = ["--quick"] if quick else []
    return [
        ["benchmarks/data_prep_speed.py", "--rows", "100000", "1000000", "3000000"],
        ["benchmarks/serving_speed.py", "--threads", "1", *(["--num-reviews", "128", "--rounds", "2"] if quick else [])],
        ["benchmarks/training_speed.py", *flag],
        ["benchmarks/topic_quality.py", *flag],
        ["benchmarks/multitask_quality.py", *flag],
    ]


def load(name: str) -> dict | None:
    path = RESULTS_DIR / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def first_available(*names: str) -> tuple[str, dict] | tuple[None, None]:
    for name in names:
        if (payload := load(name)) is not None:
            return name, payload
    return None, None


def multitask_section(quick: bool) -> list[str]:
    name, payload = first_available(*(["multitask_quality_quick"] if quick else ["multitask_quality", "multitask_quality_quick"]))
    if payload is None:
        return []
    budget = payload["budget"]
    return [
        "### Multi-task quality (clothing reviews, test split)",
        "",
        f"`{payload['command']}` — {payload['encoder']}; {payload['data']} ({payload['test_rows']} reviews); budget per "
        f"transformer row: {budget['epochs']} epoch(s) on {budget['max_train_samples'] or 'all'} training reviews, "
        f"sequence length {budget['max_seq_length']}, batch {budget['batch_size']}, learning rate "
        f"{budget['learning_rate']}; seeds {payload['seeds']}. ({name}.json, {name}.png)",
        "",
        multitask_table(payload["rows"]),
        "",
        f"![multi-task quality](benchmarks/results/{name}.png)",
        "",
    ]


def topic_section(quick: bool) -> list[str]:
    name, payload = first_available(*(["topic_quality_quick"] if quick else ["topic_quality", "topic_quality_quick"]))
    if payload is None:
        return []
    return [
        "### Topic classifier quality (Amazon reviews, test split)",
        "",
        f"`{payload['command']}` — NMF with {payload['num_topics']} topics; training reviews: "
        f"{payload['max_train_samples'] or 'all'}; split sizes {payload['split_sizes']}. ({name}.json)",
        "",
        payload["markdown"],
        "",
        "The labels are NMF topics of TF-IDF vectors mapped by keywords, so a TF-IDF classifier learns the labeller's "
        "own features: read these rows as agreement with the NMF labels, not as topic accuracy judged by people.",
        "",
        f"![confusion matrix, fine-tuned](benchmarks/results/{name}_confusion_fine_tuned.png)",
        f"![confusion matrix, frozen features](benchmarks/results/{name}_confusion_frozen.png)",
        "",
    ]


def speed_section(quick: bool) -> list[str]:
    lines = ["### Speed and memory", ""]
    training_name, training = first_available(*(["training_speed_quick"] if quick else ["training_speed", "training_speed_quick"]))
    if training:
        baseline, ours = training["runs"].values()
        lines += [
            f"**Training** (`{training['command']}`, {training['steps']} steps, batch {training['batch_size']}, "
            f"max length {training['max_seq_length']}; {training_name}.json):",
            "",
            "| batches | samples/s | test accuracy | test macro-F1 | test age MAE | peak RSS (MB) |",
            "|---|---|---|---|---|---|",
            *(f"| {mode} | {run['train_samples_per_second']:.1f} | {run['test_rating_accuracy']:.3f} | "
              f"{run['test_rating_macro_f1']:.3f} | {run['test_age_mae']:.2f} | {run['peak_rss_mb']} |"
              for mode, run in training["runs"].items()),
            "",
            f"Dynamic padding + length grouping: **{training['speedup']:.2f}×** the samples/s of padding to max length. "
            "Both runs saw the same number of reviews; their test metrics come from one seed each after few steps, so "
            "they show no more than that neither way broke training (equal quality needs several seeds).",
            "",
        ]
    serving = load("serving_speed")
    if serving:
        lines += ["**Serving** (`python benchmarks/serving_speed.py --threads 1`, " f"{serving['model']}, batch "
                  f"{serving['batch_size']}, {serving['num_reviews']} real reviews per set, 1 torch thread; "
                  "serving_speed.json):", "",
                  "| reviews | pipeline reviews/s | app reviews/s (requests of 32) | ratio | p50 latency pipeline / app (ms) |",
                  "|---|---|---|---|---|"]
        for text_set, result in serving["text_sets"].items():
            throughput, latency = result["throughput"], result["latency"]
            lines.append(
                f"| {text_set} | {throughput['pipeline']['reviews_per_s']:.1f} | "
                f"{throughput['app_requests_of_batch_size']['reviews_per_s']:.1f} | "
                f"{result['throughput_speedup']['app_requests_of_batch_size']:.2f}× | "
                f"{latency['pipeline']['p50_ms']:.1f} / {latency['app']['p50_ms']:.1f} |")
        lines += ["", "![serving speed](benchmarks/results/serving_speed.png)", ""]
    data_prep = load("data_prep_speed")
    if data_prep:
        lines += ["**Data prep** (`python benchmarks/data_prep_speed.py`: read + mention filter + both cleanings of "
                  "the shared Amazon files replicated in Review Full's headerless format; data_prep_speed.json):", "",
                  "| rows | datasets: seconds, peak RSS (MB) | pandas: seconds, peak RSS (MB) | time ratio | RSS ratio |",
                  "|---|---|---|---|---|"]
        for size in data_prep["results"]:
            ours, pandas, ratio = size["datasets"], size["pandas"], size["datasets_over_pandas"]["total"]
            lines.append(f"| {size['rows']:,} | {ours['total_seconds']:.1f} s, {ours['peak_rss_mb']} | "
                         f"{pandas['total_seconds']:.1f} s, {pandas['peak_rss_mb']} | {ratio['time']:.2f} | "
                         f"{ratio['peak_rss']:.2f} |")
        lines += ["", "![data prep speed](benchmarks/results/data_prep_speed.png)", ""]
    return lines


def targets_section(quick: bool) -> list[str]:
    """The project's targets next to what the JSON files hold."""
    lines = ["### Against the targets", ""]
    _, quality = first_available(*(["multitask_quality_quick"] if quick else ["multitask_quality", "multitask_quality_quick"]))
    if quality:
        rows = quality["rows"]
        multitask = {name: row for name, row in rows.items() if "multi-task" in name}
        best = {key: (max if key != "age_mae" else min)(row["summary"][key]["mean"] for row in multitask.values())
                for key in ("rating_accuracy", "rating_macro_f1", "age_mae")}
        tfidf = next(row for name, row in rows.items() if name.startswith("TF-IDF"))["summary"]
        accuracy_gap = best["rating_accuracy"] - tfidf["rating_accuracy"]["mean"]
        mae_gap = tfidf["age_mae"]["mean"] - best["age_mae"]
        single_rating = next(row for name, row in rows.items() if "single-task rating" in name)["summary"]
        single_age = next(row for name, row in rows.items() if "single-task age" in name)["summary"]
        lines += [
            f"- Multi-task (best row): rating accuracy {best['rating_accuracy']:.3f} (target ≥ 0.72), macro-F1 "
            f"{best['rating_macro_f1']:.3f} (target ≥ 0.60), age MAE {best['age_mae']:.2f} years (target ≤ 8.9): "
            + ("not met" if best["rating_accuracy"] < 0.72 or best["rating_macro_f1"] < 0.60 or best["age_mae"] > 8.9
               else "met") + ".",
            f"- Multi-task vs TF-IDF + LogisticRegression / Ridge: accuracy {accuracy_gap:+.3f}, age MAE "
            f"{-mae_gap:+.2f} years ({'better on both' if accuracy_gap > 0 and mae_gap > 0 else 'not better on both'}).",
            f"- Multi-task vs single-task: single-task rating accuracy {single_rating['rating_accuracy']['mean']:.3f}, "
            f"single-task age MAE {single_age['age_mae']['mean']:.2f}; multi-task "
            + ("≥" if best["rating_accuracy"] >= single_rating["rating_accuracy"]["mean"]
               and best["age_mae"] <= single_age["age_mae"]["mean"] else "is not ≥")
            + " single-task on both in this run.",
        ]
    _, training = first_available(*(["training_speed_quick"] if quick else ["training_speed", "training_speed_quick"]))
    if training:
        lines.append(f"- Training speed: {training['speedup']:.2f}× padding to max length (target ≥ 1.5×).")
    serving = load("serving_speed")
    if serving:
        ratios = {name: result["throughput_speedup"]["app_requests_of_batch_size"]
                  for name, result in serving["text_sets"].items()}
        lines.append("- Serving at batch 32: " + ", ".join(f"{name} {ratio:.2f}×" for name, ratio in ratios.items())
                     + " the reviews/s of `transformers.pipeline` (target ≥ 2×).")
    data_prep = load("data_prep_speed")
    if data_prep:
        largest = data_prep["results"][-1]
        ratio = largest["datasets_over_pandas"]["total"]
        lines.append(f"- Data prep at {largest['rows']:,} rows: {ratio['time']:.2f}× pandas' time (target ≤ 1) and "
                     f"{ratio['peak_rss']:.2f}× its peak RSS (target ≤ 0.33).")
    return lines + [""]


def report(quick: bool, wall_seconds: float | None) -> str:
    facts = machine_facts()
    how = (f"Produced by `python benchmarks/run_all.py{' --quick' if quick else ''}` in {wall_seconds / 60:.0f} minutes"
           if wall_seconds else
           "Each table names the benchmark command that wrote its JSON under `benchmarks/results/`; "
           f"`python benchmarks/run_all.py{' --quick' if quick else ''}` reruns them all and rewrites this section")
    header = [
        START_MARKER,
        "## Results",
        "",
        f"{how}, on {facts['cpu_cores']} CPU cores ({facts['processor']}, torch {facts['torch']}, no GPU). "
        + ("These are the **quick** mode's figures (one seed, fewer rows and steps); the full mode (3 seeds, 3 epochs, "
           "all rows) needs hours of CPU or a GPU and has not been run yet." if quick else ""),
        "",
    ]
    body = targets_section(quick) + multitask_section(quick) + topic_section(quick) + speed_section(quick)
    return "\n".join(header + body + [END_MARKER])


def write_readme_section(section: str) -> None:
    readme = REPO_ROOT / "README.md"
    text = readme.read_text()
    if START_MARKER in text:
        before, rest = text.split(START_MARKER, 1)
        after = rest.split(END_MARKER, 1)[1]
        text = before + section + after
    else:
        text = text.replace("\n## Tests\n", f"\n{section}\n\n## Tests\n", 1)
    readme.write_text(text)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--report_only", action="store_true")
    arguments = parser.parse_args()
    started = time.perf_counter()
    wall = None
    if not arguments.report_only:
        for command in benchmark_commands(arguments.quick):
            print("$ python " + " ".join(command), flush=True)
            subprocess.run([sys.executable, *command], cwd=REPO_ROOT, check=True)
        wall = time.perf_counter() - started
        (RESULTS_DIR / "run_all.json").write_text(json.dumps(
            {"quick": arguments.quick, "wall_seconds": round(wall), "machine": machine_facts()}, indent=2) + "\n")
    elif (RESULTS_DIR / "run_all.json").is_file():
        wall = json.loads((RESULTS_DIR / "run_all.json").read_text())["wall_seconds"]
    write_readme_section(report(arguments.quick, wall))


if __name__ == "__main__":
    main()
