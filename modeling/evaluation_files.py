"""What an evaluation writes beside the model: the test predictions of the multi-task model as CSV, and a
classifier's confusion matrix as JSON and PNG."""

import json
import logging
from pathlib import Path

import numpy as np
from datasets import Dataset
from sklearn.metrics import confusion_matrix

logger = logging.getLogger(__name__)


def write_multitask_predictions(test_split: Dataset, rating_logits: np.ndarray, predicted_age: np.ndarray, path: str,
                                columns: dict[str, str]) -> None:
    """One row per test review, in the split's order: the prediction's rows are in dataset order (`ReviewTrainer`).
    `rating_logits` and `predicted_age` are what the saved model serves (its decision rule applied to the logits).
    `columns` names the split's `text`, `rating` (class id, 0 = 1 star) and `age` columns."""
    table = test_split.map(
        lambda batch, indices: {
            "predicted_rating": (rating_logits[indices].argmax(-1) + 1).tolist(),
            "predicted_age": np.round(predicted_age[indices].astype(np.float64), 1).tolist(),
        },
        with_indices=True, batched=True, desc="Collecting predictions",
    )
    table = table.map(lambda batch: {"true_rating": [r + 1 for r in batch[columns["rating"]]]}, batched=True)
    table = table.rename_column(columns["age"], "true_age").select_columns(
        [columns["text"], "true_rating", "predicted_rating", "true_age", "predicted_age"]
    )
    table.to_csv(path, index=False)
    logger.info("Wrote %d test predictions to %s", len(table), path)


def write_confusion_matrix(labels: np.ndarray, predicted: np.ndarray, label_names: list[str], prefix: str,
                           output_dir: str) -> None:
    """`<prefix>_confusion_matrix.json` (rows: true class, columns: predicted) and a PNG of it."""
    matrix = confusion_matrix(labels, predicted, labels=list(range(len(label_names))))
    path = Path(output_dir)
    path.mkdir(parents=True, exist_ok=True)
    (path / f"{prefix}_confusion_matrix.json").write_text(
        json.dumps({"labels": label_names, "rows": "true", "columns": "predicted", "matrix": matrix.tolist()},
                   indent=2) + "\n"
    )
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(1.1 * len(label_names) + 2, 1.0 * len(label_names) + 1.5))
    axis.imshow(matrix, cmap="Blues")
    axis.set_xticks(range(len(label_names)), label_names, rotation=45, ha="right")
    axis.set_yticks(range(len(label_names)), label_names)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    threshold = matrix.max() / 2 if matrix.size else 0
    for (row, column), count in np.ndenumerate(matrix):
        axis.text(column, row, str(count), ha="center", va="center",
                  color="white" if count > threshold else "black", fontsize=8)
    axis.set_title(f"{prefix} confusion matrix")
    figure.tight_layout()
    figure.savefig(path / f"{prefix}_confusion_matrix.png", dpi=110)
    plt.close(figure)
