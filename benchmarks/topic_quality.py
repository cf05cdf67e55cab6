"""Topic classifier quality on one fixed split of the shared Amazon reviews: fine-tuning vs frozen features + MLP
(the original approach) vs TF-IDF + LogisticRegression, all scored on the same test reviews.

    python -m benchmarks.topic_quality [--quick]

The topic labels come from `python -m data_prep.topics` with 30 topics (its other settings at their defaults).
Writes benchmarks/results/topic_quality[_quick].json and .png (the test confusion matrix of each transformer method).
`python -m benchmarks.run_all --report_only` turns the JSON into a table.
"""

import argparse
import json
import logging
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
from datasets import load_from_disk
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score

from benchmarks.common import (
    RESULTS_DIR, amazon_files, bf16_training_flags, command_line, encoder_name, packaged_minilm, run_script_measured,
    write_json,
)
from data_prep import topics
from data_prep.topics import LABEL_COLUMN
from modeling.baselines import tfidf_features
from modeling.metrics import classification_metrics

logger = logging.getLogger("topic_quality")
NUM_TOPICS = 30
REPORTED = ("accuracy", "macro_f1", "macro_f1_present_classes")


def scores(labels, predicted, label_names) -> dict:
    labels, predicted = np.asarray(labels), np.asarray(predicted)
    metrics = classification_metrics(labels, predicted, label_names)
    metrics["macro_f1_present_classes"] = float(
        f1_score(labels, predicted, labels=np.unique(labels), average="macro", zero_division=0))
    return metrics


def tfidf_row(splits, max_train_samples: int | None) -> dict:
    train = splits["train"]
    if max_train_samples is not None:  # the same first reviews train_topic.py's --max_train_samples takes
        train = train.select(range(min(max_train_samples, len(train))))
    features, test_features = tfidf_features(train["text"], splits["test"]["text"])
    classifier = LogisticRegression(C=4.0, max_iter=2000).fit(features, train[LABEL_COLUMN])
    return scores(splits["test"][LABEL_COLUMN], classifier.predict(test_features),
                  splits["test"].features[LABEL_COLUMN].names)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3,000 training reviews, 1 epoch of fine-tuning")
    parser.add_argument("--model_name_or_path", default=None, help="Encoder (default: the packaged MiniLM)")
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    model_path = arguments.model_name_or_path or packaged_minilm()
    max_train = 3000 if arguments.quick else None
    # bf16 where this machine runs it fast speeds up fine-tuning; the frozen features are computed in fp32 either way.
    precision_flags = bf16_training_flags()
    methods = {
        "fine-tuned": ["--method", "finetune", "--learning_rate", "1e-4", "--num_train_epochs", "1" if arguments.quick else "2",
                       "--per_device_train_batch_size", "16", *precision_flags],
        "frozen features + MLP": ["--method", "features", "--learning_rate", "1e-3", "--num_train_epochs", "20",
                                  "--per_device_train_batch_size", "64"],
    }
    name = "topic_quality_quick" if arguments.quick else "topic_quality"
    rows = {}
    with tempfile.TemporaryDirectory() as work_dir:
        dataset_dir = Path(work_dir) / "topics"
        topics.main(["--input_file", *map(str, amazon_files()), "--no_mention_filter",
                     "--num_topics", str(NUM_TOPICS), "--output_dir", str(dataset_dir)])
        splits = load_from_disk(str(dataset_dir))
        rows["TF-IDF + LogisticRegression"] = tfidf_row(splits, max_train)
        for method, flags in methods.items():
            output_dir = Path(work_dir) / method.split()[0]
            measured = run_script_measured("train_topic.py", [
                "--dataset_dir", str(dataset_dir), "--model_name_or_path", model_path, "--output_dir", str(output_dir),
                "--do_train", "--do_predict", "--max_seq_length", "128", "--per_device_eval_batch_size", "64",
                "--warmup_steps", "0.06", "--save_strategy", "no", "--report_to", "none", "--disable_tqdm", "true",
                "--seed", "42", *(["--max_train_samples", str(max_train)] if max_train else []), *flags,
            ])
            results = json.loads((output_dir / "all_results.json").read_text())
            # wall time and peak RSS: the whole train_topic.py run (frozen features: their encoding included)
            rows[f"{encoder_name(model_path)} {method}"] = {
                **{key: results[f"test_{key}"] for key in REPORTED},
                **{key: results[key] for key in results if key.startswith("test_f1_")},
                "train_runtime_seconds": results["train_runtime"], **measured,
            }
            RESULTS_DIR.mkdir(parents=True, exist_ok=True)
            shutil.copy(output_dir / "test_confusion_matrix.png",
                        RESULTS_DIR / f"{name}_confusion_{method.split()[0].replace('-', '_')}.png")
        report = json.loads((dataset_dir / topics.TOPICS_REPORT).read_text())

    write_json(name, {
        "command": command_line("topic_quality", sys.argv[1:]),
        "encoder": model_path, "fine_tuning_precision": "bf16" if precision_flags else "fp32", "num_topics": NUM_TOPICS, "max_train_samples": max_train,
        "split_sizes": {split: len(splits[split]) for split in splits}, "category_sizes": report["category_sizes"],
        "label_names": splits["train"].features[LABEL_COLUMN].names,
        "rows": rows,
    })


if __name__ == "__main__":
    main()
