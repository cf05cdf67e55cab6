"""The labelled topic dataset on the Hub: pushed with `datasets` (parquet splits), the topic model and report beside
it, and a dataset card generated from the report; pulled back for `train_topic.py --dataset_name`.

The card says where the reviews came from, how they were filtered and cleaned, which topic went to which category
with its words, the labels per split, how far the labeller can be trusted against product categories (the project's
validity benchmark, when the caller has its figures) and the known limits.
"""

import json
import logging
import os
from pathlib import Path

from datasets import DatasetDict, load_dataset
from huggingface_hub import DatasetCard, DatasetCardData, HfApi, get_token, hf_hub_download, snapshot_download
from huggingface_hub.utils import HFValidationError, validate_repo_id

from .topic_model import CATEGORY_NAMES, OTHER_LABEL

logger = logging.getLogger(__name__)

CARD_TEMPLATE = Path(__file__).with_name("cards") / "topic_dataset.md"
# What travels beside the parquet splits: the labeller itself (to label new text the same way) and its report.
TOPIC_FILES = ("topic_model/*", "topics.json", "topics.png")
SIZE_CATEGORIES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
                   (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B"))
# The labeller settings the project's validity figures were measured with (benchmarks/topic_validity.py labels with
# the defaults): a dataset labelled otherwise gets them quoted as the defaults', not its own.
VALIDITY_SETTINGS = ("num_topics", "min_df", "max_df", "max_features", "ignore_filler_words", "topic_mapping",
                     "affinity_temperature", "min_subject_mass", "min_category_share", "review_weight",
                     "review_temperature", "topic_categories", "sentence_encoder")


# The project's measurement of the labeller against product categories, in a clone of the repository (a pip-installed
# copy has none, and its cards then say how to measure).
PROJECT_VALIDITY_FIGURES = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "topic_validity.json"


def check_dataset_push(repo_id: str | None, token: str | None) -> None:
    """Before any work: a push that cannot succeed (no id, a malformed one, no token) fails with the fix."""
    check_dataset_repo_id(repo_id)
    if not (token or get_token()):
        raise ValueError("--push_to_hub needs a Hugging Face token with write access: pass --hub_token, set HF_TOKEN, "
                         "or run `hf auth login`")


def check_dataset_repo_id(repo_id: str | None, flag: str = "--hub_dataset_id") -> None:
    """One clear error when the id cannot be a Hub dataset id."""
    if not repo_id or repo_id.count("/") != 1:
        raise ValueError(f"{flag} {repo_id!r} is not a Hub dataset id: expected <user or organization>/<dataset name>, "
                         "e.g. me/amazon-review-topics")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise ValueError(f"{flag} {repo_id!r} is not a valid Hub dataset id: {error}") from error


def size_category(rows: int) -> str:
    return next((name for bound, name in SIZE_CATEGORIES if rows < bound), "n>1T")


def topic_rows(report: dict, words: int = 8) -> list[dict]:
    """One row per topic for the card: its category (or its affinities when spread), size and top words."""
    rows = []
    for topic in report["topics"]:
        affinities = {name: share for name, share in (topic.get("affinities") or {}).items() if share >= 0.05}
        if topic.get("category"):
            category = topic["category"]
        elif affinities:
            category = ", ".join(f"{name} {share:.2f}" for name, share in sorted(affinities.items(), key=lambda x: -x[1]))
        else:
            category = "none (generic)"
        rows.append({"topic": topic["topic"], "category": category, "reviews": topic.get("size", 0),
                     "words": ", ".join(topic["top_words"][:words])})
    return rows


def dataset_card(report: dict, repo_id: str, validity: dict | None = None, metadata: dict | None = None) -> DatasetCard:
    """The card, rendered from `cards/topic_dataset.md`; `metadata` (the `dataset_info` and `configs` push_to_hub
    wrote) is kept in its YAML."""
    sizes = report["category_sizes"]
    rows = sum(sum(counts.values()) for counts in sizes.values())
    source = report.get("source", "local review files")
    if validity is not None:
        validity = {**validity, "same_settings": all(report["settings"].get(name) == validity["settings"].get(name)
                                                     for name in VALIDITY_SETTINGS)}
    card_data = DatasetCardData(
        language=["en"], license="other", license_name="source-terms", task_categories=["text-classification"],
        task_ids=["topic-classification"], annotations_creators=["machine-generated"],
        pretty_name=f"Amazon review topics ({repo_id.split('/')[-1]})", size_categories=[size_category(rows)],
        tags=["amazon-reviews", "topic-modeling", "nmf", "weak-supervision"],
        **({"source_datasets": [report["hub_dataset"]]} if report.get("hub_dataset") else {}),
        **(metadata or {}),
    )
    labels = [name for name in report["categories"] if any(counts.get(name) for counts in sizes.values())]
    return DatasetCard.from_template(
        card_data, template_path=str(CARD_TEMPLATE), repo_id=repo_id, report=report, source=source,
        settings=report["settings"], decision=report.get("decision") or {}, sizes=sizes, labels=labels,
        categories=CATEGORY_NAMES, other_label=OTHER_LABEL, topics=topic_rows(report), validity=validity,
        dropped={reason: count for reason, count in report["dropped_while_reading"].items() if count},
        empty=[name for name in CATEGORY_NAMES if not any(counts.get(name) for counts in sizes.values())],
    )


def push_topic_dataset(output_dir: str | os.PathLike, splits: DatasetDict, report: dict, repo_id: str,
                       validity: dict | None = None, token: str | None = None, private: bool | None = None,
                       revision: str | None = None) -> str:
    """Push the splits (parquet, through `datasets`), the topic model and report saved in `output_dir`, and the
    generated card (checked by the Hub before anything is pushed); returns the commit sha of the last commit (pull
    that exact version with `--dataset_revision`)."""
    check_dataset_push(repo_id, token)
    dataset_card(report, repo_id, validity=validity).validate(repo_type="dataset")
    splits.push_to_hub(repo_id, token=token, private=private, revision=revision,
                       commit_message="Upload the labelled review topics")
    api = HfApi(token=token)
    api.upload_folder(folder_path=str(output_dir), repo_id=repo_id, repo_type="dataset", revision=revision,
                      allow_patterns=list(TOPIC_FILES), delete_patterns=["topic_model/*"],
                      commit_message="Upload the topic model and report")
    # push_to_hub wrote dataset_info and configs into README.md at this revision: the generated card keeps them
    pushed = DatasetCard.load(hf_hub_download(repo_id, "README.md", repo_type="dataset", revision=revision,
                                              token=token))
    metadata = {key: value for key, value in pushed.data.to_dict().items() if key in ("dataset_info", "configs")}
    card = dataset_card(report, repo_id, validity=validity, metadata=metadata)
    commit = card.push_to_hub(repo_id, repo_type="dataset", token=token, revision=revision,
                              commit_message="Dataset card")
    logger.info("Pushed the labelled topic dataset to %s (%s)", repo_id, commit)
    return commit.oid


def pull_topic_dataset(repo_id: str, revision: str | None = None) -> tuple[DatasetDict, Path, str]:
    """The splits of a pushed topic dataset, a local folder with its topic model and report, and the commit both came
    from (resolved once, so a push in between cannot mix versions)."""
    sha = HfApi().dataset_info(repo_id, revision=revision).sha
    splits = load_dataset(repo_id, revision=sha)
    folder = Path(snapshot_download(repo_id, repo_type="dataset", revision=sha, allow_patterns=list(TOPIC_FILES)))
    return splits, folder, sha


def read_validity_figures(path: str | os.PathLike, default_settings: dict) -> dict | None:
    """The labeller's rows of the project's validity benchmark (benchmarks/results/topic_validity.json), measured with
    `default_settings` (the labeller's defaults), or None when the file is not there (a pip-installed copy has no
    benchmark results)."""
    path = Path(path)
    if not path.is_file():
        return None
    results = json.loads(path.read_text(encoding="utf-8"))
    rows = {name: row for name, row in results["rows"].items() if name.startswith("labeller")}
    return {"command": results.get("command"), "labelling": results.get("labelling"), "rows": rows,
            "truth": results.get("truth", {}).get("expected_label", {}), "settings": dict(default_settings)}
