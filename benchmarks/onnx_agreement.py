"""Agreement of each serving backend with torch float32 on trained models and held-out reviews.

    python -m benchmarks.onnx_agreement --multitask_model out/multitask --topic_model out/topic_finetune \
        --topic_dataset out/topics

Both folders need their `onnx/` export (`python -m modeling.export_onnx FOLDER`). Held-out reviews: the clothing test
split (the training script's stratified split, seed 42) and the topic dataset's test split. For each backend
(torch fp32, torch bf16 autocast, ONNX fp32, ONNX int8):
- rating: top-1 agreement with torch fp32 and the largest gap in any star's probability; age: mean and largest
  absolute difference in years; topic: top-1 agreement and the largest probability gap;
- test accuracy, macro-F1 and age MAE against the truth, beside fp32's.
Bars (issue 15): rating and topic agreement >= 99%, age mean absolute difference <= 0.3 years.
Writes `onnx_agreement.json` under benchmarks/results/ (or $BENCHMARK_RESULTS_DIR).
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import accuracy_score, f1_score

from benchmarks.common import SPLIT_SEED, clothing_reviews_file, command_line, write_json
from modeling import backends
from modeling.export_onnx import onnx_paths
from modeling.serving import RatingAgeModel, TopicClassifier

AGREEMENT_BAR = backends.AGREEMENT_BAR
AGE_DIFFERENCE_BAR_YEARS = 0.3
BACKENDS = {  # name in the results -> (backend, autocast dtype)
    "torch": (backends.TORCH, None),
    "torch_bf16": (backends.TORCH, torch.bfloat16),
    "onnx": (backends.ONNX_FP32, None),
    "onnx_int8": (backends.ONNX_INT8, None),
}
REFERENCE = "torch"


def result_name(choice: backends.BackendChoice) -> str:
    """The results' name for what `--backend auto` chose."""
    return next(name for name, (backend, dtype) in BACKENDS.items()
                if (backend, dtype is not None) == (choice.backend, choice.bf16))


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--multitask_model", type=Path, help="Trained multi-task folder with onnx/.")
    parser.add_argument("--topic_model", type=Path, help="Trained topic classifier folder with onnx/.")
    parser.add_argument("--topic_dataset", type=Path, help="The topic dataset the classifier was trained on.")
    parser.add_argument("--max_reviews", type=int, default=1000, help="Held-out reviews per model (first N).")
    parser.add_argument("--threads", type=int, help="torch and ONNX Runtime threads (default: torch's choice).")
    args = parser.parse_args()
    if args.topic_model and not args.topic_dataset:
        parser.error("--topic_model needs --topic_dataset (its held-out test split)")
    if not (args.multitask_model or args.topic_model):
        parser.error("give --multitask_model and/or --topic_model")
    return args


def load_backends(model_class, folder: Path) -> dict:
    """The folder's model on every backend; an ONNX backend that falls back to torch is an error here."""
    loaded = {}
    for name, (backend, autocast_dtype) in BACKENDS.items():
        served = model_class.load(str(folder), backend=backend, autocast_dtype=autocast_dtype)
        if backend != backends.TORCH and not isinstance(served.backend, backends.OnnxBackend):
            raise FileNotFoundError(f"{folder} has no onnx/ export: run python -m modeling.export_onnx {folder}")
        loaded[name] = served
    return loaded


def file_sizes_mb(folder: Path) -> dict:
    paths = {"torch_safetensors": folder / "model.safetensors", **{
        f"onnx_{kind}": path for kind, path in onnx_paths(folder).items()}}
    return {name: round(path.stat().st_size / 1e6, 1) for name, path in paths.items() if path.is_file()}


def probabilities(results: list[dict], key: str, labels: list[str]) -> np.ndarray:
    return np.array([[result[key][label] for label in labels] for result in results])


def answers_and_agreement(model_class, folder: Path, texts: list[str], answer: str, scores: str, labels_of) -> tuple:
    """Every backend's answers on the texts, and per backend (share of answers equal to torch fp32's, largest gap in
    any class probability)."""
    loaded = load_backends(model_class, folder)
    labels = labels_of(loaded[REFERENCE])
    answers = {name: served.predict(texts) for name, served in loaded.items()}
    reference, reference_probabilities = answers[REFERENCE], probabilities(answers[REFERENCE], scores, labels)
    return answers, {
        name: (float(np.mean([mine[answer] == theirs[answer] for mine, theirs in zip(results, reference)])),
               float(np.abs(probabilities(results, scores, labels) - reference_probabilities).max()))
        for name, results in answers.items()}


def rating_age_agreement(folder: Path, max_reviews: int) -> dict:
    from data_prep.clothing import AGE_COLUMN, RATING_COLUMN, TEXT_COLUMN, load_clothing_reviews

    test = load_clothing_reviews(train_file=str(clothing_reviews_file()), seed=SPLIT_SEED).splits["test"]
    test = test.select(range(min(max_reviews, len(test))))
    texts, true_rating, true_age = test[TEXT_COLUMN], np.array(test[RATING_COLUMN]) + 1, np.array(test[AGE_COLUMN])
    answers, agreement = answers_and_agreement(RatingAgeModel, folder, texts, "rating", "rating_scores",
                                               lambda served: served.labels)
    reference_age = np.array([result["age"] for result in answers[REFERENCE]])
    rows = {}
    for name, results in answers.items():
        rating = np.array([result["rating"] for result in results])
        age = np.array([result["age"] for result in results])
        age_difference = np.abs(age - reference_age)
        rows[name] = {
            "rating_agreement": agreement[name][0], "max_rating_probability_gap": agreement[name][1],
            "age_mean_abs_difference_years": float(age_difference.mean()),
            "age_max_abs_difference_years": float(age_difference.max()),
            "test_rating_accuracy": float(accuracy_score(true_rating, rating)),
            "test_rating_macro_f1": float(f1_score(true_rating, rating, average="macro", labels=range(1, 6))),
            "test_age_mae": float(np.abs(age - true_age).mean()),
        }
        rows[name]["meets_bars"] = (rows[name]["rating_agreement"] >= AGREEMENT_BAR
                                    and rows[name]["age_mean_abs_difference_years"] <= AGE_DIFFERENCE_BAR_YEARS)
    return {"model": str(folder), "reviews": len(texts), "split": f"clothing test split (seed {SPLIT_SEED})",
            "file_sizes_mb": file_sizes_mb(folder), "backends": rows}


def topic_agreement(folder: Path, dataset_dir: Path, max_reviews: int) -> dict:
    from datasets import load_from_disk

    from data_prep.amazon import TEXT_COLUMN
    from data_prep.topics import LABEL_COLUMN

    test = load_from_disk(str(dataset_dir))["test"]
    test = test.select(range(min(max_reviews, len(test))))
    label_names = test.features[LABEL_COLUMN].names
    texts, truth = test[TEXT_COLUMN], [label_names[index] for index in test[LABEL_COLUMN]]
    answers, agreement = answers_and_agreement(TopicClassifier, folder, texts, "topic", "scores",
                                               lambda served: served.labels)
    rows = {}
    for name, results in answers.items():
        topics = [result["topic"] for result in results]
        rows[name] = {
            "topic_agreement": agreement[name][0], "max_topic_probability_gap": agreement[name][1],
            "test_topic_accuracy": float(accuracy_score(truth, topics)),
            "test_topic_macro_f1": float(f1_score(truth, topics, average="macro", labels=label_names)),
        }
        rows[name]["meets_bars"] = rows[name]["topic_agreement"] >= AGREEMENT_BAR
    return {"model": str(folder), "reviews": len(texts), "split": f"{dataset_dir} test split",
            "file_sizes_mb": file_sizes_mb(folder), "backends": rows}


def main() -> None:
    args = parse_arguments()
    if args.threads:
        torch.set_num_threads(args.threads)
    results = {"command": command_line("onnx_agreement", sys.argv[1:]),
               "bars": {"agreement": AGREEMENT_BAR, "age_mean_abs_difference_years": AGE_DIFFERENCE_BAR_YEARS}}
    if args.multitask_model:
        results["rating_age"] = rating_age_agreement(args.multitask_model, args.max_reviews)
    if args.topic_model:
        results["topic"] = topic_agreement(args.topic_model, args.topic_dataset, args.max_reviews)
    for task in ("rating_age", "topic"):
        for name, row in results.get(task, {}).get("backends", {}).items():
            print(f"{task:10s} {name:10s} " + ", ".join(
                f"{key} {value:.4f}" if isinstance(value, float) else f"{key} {value}" for key, value in row.items()))
    print(f"wrote {write_json('onnx_agreement', results)}")


if __name__ == "__main__":
    main()
