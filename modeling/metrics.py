"""`compute_metrics` builders (scikit-learn; no Hub metric modules)."""

import re
from collections.abc import Callable

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, mean_absolute_error, mean_squared_error
from transformers import EvalPrediction


def metric_key(label: str) -> str:
    """`"5 stars"` -> `"5_stars"`, `"refund-and-return"` -> `"refund_and_return"`."""
    return re.sub(r"[^0-9a-zA-Z]+", "_", label).strip("_").lower()


def classification_metrics(labels: np.ndarray, predicted: np.ndarray, label_names: list[str], prefix: str = "") -> dict:
    """Accuracy, macro-F1 and the F1 of each class."""
    per_class = f1_score(labels, predicted, labels=range(len(label_names)), average=None, zero_division=0)
    metrics = {
        f"{prefix}accuracy": float(accuracy_score(labels, predicted)),
        f"{prefix}macro_f1": float(
            f1_score(labels, predicted, labels=range(len(label_names)), average="macro", zero_division=0)
        ),
    }
    metrics.update({f"{prefix}f1_{metric_key(name)}": float(f1) for name, f1 in zip(label_names, per_class)})
    return metrics


def age_metrics(age_labels: np.ndarray, predicted_age: np.ndarray) -> dict:
    return {
        "age_mae": float(mean_absolute_error(age_labels, predicted_age)),
        "age_rmse": float(np.sqrt(mean_squared_error(age_labels, predicted_age))),
    }


def fit_logit_offsets(logits: np.ndarray, labels: np.ndarray, num_classes: int,
                      grid: np.ndarray = np.linspace(-2.0, 2.0, 41), rounds: int = 3) -> list[float]:
    """Per-class offsets added to the logits before the argmax that maximize macro-F1 on (validation) `labels`: a
    post-hoc logit adjustment, by coordinate ascent over `grid`. The last class keeps 0 (only differences matter);
    a change is kept only if it raises macro-F1, so no offsets at all is where it starts."""

    def macro_f1(offsets: np.ndarray) -> float:
        return f1_score(labels, (logits + offsets).argmax(-1), labels=range(num_classes), average="macro",
                        zero_division=0)

    offsets = np.zeros(num_classes)
    best = macro_f1(offsets)
    for _ in range(rounds):
        improved = False
        for index in range(num_classes - 1):
            for value in grid:
                trial = offsets.copy()
                trial[index] = value
                if (score := macro_f1(trial)) > best + 1e-12:
                    best, offsets, improved = score, trial, True
        if not improved:
            break
    return [round(float(value), 4) for value in offsets]


def build_multitask_metrics(rating_names: list[str], rating_logit_offsets: Callable[[], list[float] | None] = lambda: None
                            ) -> Callable[[EvalPrediction], dict]:
    """Rating accuracy / macro-F1 / per-class F1 and age MAE / RMSE in years, for `Trainer(compute_metrics=...)`.
    When `rating_logit_offsets()` gives offsets (the model's decision rule), the rating metrics with them are added
    as `rating_adjusted_*`: both with and without the rule."""

    def compute_metrics(eval_prediction: EvalPrediction) -> dict:
        rating_logits, predicted_age = eval_prediction.predictions[:2]
        rating_labels, age_labels = eval_prediction.label_ids
        metrics = classification_metrics(rating_labels, rating_logits.argmax(-1), rating_names, prefix="rating_")
        if (offsets := rating_logit_offsets()) is not None:
            adjusted = (rating_logits + np.asarray(offsets)).argmax(-1)
            metrics.update(classification_metrics(rating_labels, adjusted, rating_names, prefix="rating_adjusted_"))
        metrics.update(age_metrics(age_labels, predicted_age))
        return metrics

    return compute_metrics


def build_classification_metrics(label_names: list[str]) -> Callable[[EvalPrediction], dict]:
    """Accuracy, macro-F1 and per-class F1 over all classes of a single-label classifier, plus
    `macro_f1_present_classes`: the macro-F1 over the classes that occur in the evaluated labels (an empty class scores
    0 in the plain macro-F1)."""

    def compute_metrics(eval_prediction: EvalPrediction) -> dict:
        logits = eval_prediction.predictions
        logits = logits[0] if isinstance(logits, tuple) else logits
        labels, predicted = eval_prediction.label_ids, logits.argmax(-1)
        metrics = classification_metrics(labels, predicted, label_names)
        metrics["macro_f1_present_classes"] = float(
            f1_score(labels, predicted, labels=np.unique(labels), average="macro", zero_division=0)
        )
        return metrics

    return compute_metrics
