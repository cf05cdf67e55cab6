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

    def score(offsets: np.ndarray) -> float:
        return macro_f1(labels, (logits + offsets).argmax(-1), num_classes)

    offsets = np.zeros(num_classes)
    best = score(offsets)
    for _ in range(rounds):
        improved = False
        for index in range(num_classes - 1):
            for value in grid:
                trial = offsets.copy()
                trial[index] = value
                if (trial_score := score(trial)) > best + 1e-12:
                    best, offsets, improved = trial_score, trial, True
        if not improved:
            break
    return [round(float(value), 4) for value in offsets]


def macro_f1(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> float:
    return float(f1_score(labels, predicted, labels=range(num_classes), average="macro", zero_division=0))


def paired_bootstrap_gain(labels: np.ndarray, baseline: np.ndarray, candidate: np.ndarray, score,
                          resamples: int = 1000, seed: int = 0) -> tuple[float, float]:
    """(score(candidate) - score(baseline), its standard error): the standard deviation of that gain over
    `resamples` bootstrap resamples of the reviews, both predictions scored on the same resample."""
    gain = score(labels, candidate) - score(labels, baseline)
    rows = np.random.default_rng(seed).integers(0, len(labels), size=(resamples, len(labels)))
    gains = [score(labels[sample], candidate[sample]) - score(labels[sample], baseline[sample]) for sample in rows]
    return float(gain), float(np.std(gains, ddof=1))


def cross_fitted_offsets(logits: np.ndarray, labels: np.ndarray, num_classes: int, folds: int = 5,
                         seed: int = 0) -> dict:
    """Whether logit offsets carry over to reviews they were not fitted on: on each of `folds` stratified folds of
    (validation) `labels`, the offsets fitted on the other folds decide; the macro-F1 gain of these out-of-fold
    decisions over the plain argmax and its paired-bootstrap standard error. `keep` is a gain past two standard
    errors; `offsets` are then those fitted on all rows (else None: the model decides by argmax)."""
    from sklearn.model_selection import StratifiedKFold

    out_of_fold = np.empty(len(labels), dtype=np.int64)
    for fit_rows, held_out in StratifiedKFold(folds, shuffle=True, random_state=seed).split(logits, labels):
        offsets = fit_logit_offsets(logits[fit_rows], labels[fit_rows], num_classes)
        out_of_fold[held_out] = (logits[held_out] + np.asarray(offsets)).argmax(-1)
    gain, standard_error = paired_bootstrap_gain(labels, logits.argmax(-1), out_of_fold,
                                                 lambda truth, predicted: macro_f1(truth, predicted, num_classes))
    keep = gain > 2 * standard_error
    return {"gain": gain, "standard_error": standard_error, "keep": bool(keep),
            "offsets": fit_logit_offsets(logits, labels, num_classes) if keep else None}


def expected_ratings(logits: np.ndarray) -> np.ndarray:
    """Ordinal decoding: the class nearest the expected class index under the softmax probabilities (argmax reads
    the classes as unordered; this reads them as a scale)."""
    probabilities = np.exp(logits - logits.max(-1, keepdims=True))
    probabilities /= probabilities.sum(-1, keepdims=True)
    expected = probabilities @ np.arange(logits.shape[-1])
    return np.clip(np.rint(expected), 0, logits.shape[-1] - 1).astype(np.int64)


def multitask_metrics(rating_logits: np.ndarray, predicted_age: np.ndarray, rating_labels: np.ndarray,
                      age_labels: np.ndarray, rating_names: list[str], prefix: str = "") -> dict:
    """Rating accuracy / macro-F1 / per-class F1 (argmax of `rating_logits`) and age MAE / RMSE in years."""
    metrics = classification_metrics(rating_labels, rating_logits.argmax(-1), rating_names, prefix="rating_")
    metrics.update(age_metrics(age_labels, predicted_age))
    return {prefix + key: value for key, value in metrics.items()}


def build_multitask_metrics(rating_names: list[str]) -> Callable[[EvalPrediction], dict]:
    """`multitask_metrics` of the model's own heads, for `Trainer(compute_metrics=...)`, and `rating_expected_*`:
    those of the ordinal decoding (`expected_ratings`), a lever measured in every run."""

    def compute_metrics(eval_prediction: EvalPrediction) -> dict:
        rating_logits, predicted_age = eval_prediction.predictions[:2]
        rating_labels, age_labels = eval_prediction.label_ids
        metrics = multitask_metrics(rating_logits, predicted_age, rating_labels, age_labels, rating_names)
        expected = classification_metrics(rating_labels, expected_ratings(rating_logits), rating_names, "rating_expected_")
        metrics.update({key: expected[key] for key in ("rating_expected_accuracy", "rating_expected_macro_f1")})
        return metrics

    return compute_metrics


def decision_levers(rating_logits: np.ndarray, rating_labels: np.ndarray) -> dict:
    """The two rating decision levers measured on (validation) logits against the argmax, each a gain with its
    standard error: logit offsets cross-fitted (`cross_fitted_offsets`, whose `offsets` are None unless the gain is past
    two standard errors) and the ordinal decoding (`expected_ratings`), on macro-F1 and accuracy."""
    num_classes = rating_logits.shape[-1]
    argmax, expected = rating_logits.argmax(-1), expected_ratings(rating_logits)
    cross_fit = cross_fitted_offsets(rating_logits, rating_labels, num_classes)
    levers = {"rating_offsets_cross_fit_gain": cross_fit["gain"],
              "rating_offsets_cross_fit_standard_error": cross_fit["standard_error"]}
    for name, score in (("macro_f1", lambda truth, predicted: macro_f1(truth, predicted, num_classes)),
                        ("accuracy", lambda truth, predicted: float(np.mean(truth == predicted)))):
        gain, standard_error = paired_bootstrap_gain(rating_labels, argmax, expected, score)
        levers.update({f"rating_expected_{name}_gain": gain, f"rating_expected_{name}_standard_error": standard_error})
    return {"metrics": levers, "offsets": cross_fit["offsets"]}


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
