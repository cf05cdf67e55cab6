"""Topic labels for Amazon reviews: TF-IDF + NMF fit on the train split; each topic's affinity to the categories
judged by sentence embeddings of its typical reviews (or by keywords); each review labelled from its whole topic
mixture, `other` when no category holds its subject; a report, a chart and the saved topic model.

    python -m data_prep.topics --input_file ../shared/data/amazon_*.csv.gz --no_mention_filter --output_dir topics

writes a `DatasetDict` (train / validation / test with `text`, `nmf_text`, `rating`, `topic`, `topic_weight` and the
`label` ClassLabel), `topics.json`, `topics.png` and `topic_model/` (JSON + safetensors, no pickle), which
`TopicModel.load` reads back to label new text with the same decision.

The labeller reads review text only: a dataset with an evaluation-only column (`category`, `source`) is refused.
"""

import json
import logging
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value, load_from_disk
from transformers import HfArgumentParser

from .review_source import ReviewSourceArguments
from .amazon import DEFAULT_MENTION_PATTERN, NMF_TEXT_COLUMN, TEXT_COLUMN, load_amazon_reviews
from .text import clean_for_topics
from .review_splits import sample_splits, split_reviews, topic_fit_sample
from .topic_mapping import (
    EMBEDDING_PRECISIONS, anchor_vectors, default_sentence_encoder, embedding_scores, soft_affinities,
)
from .topic_model import CATEGORY_NAMES, DEFAULT_DECISION, OTHER_LABEL, TopicModel, checked_decision
from .topic_hub import PROJECT_VALIDITY_FIGURES, check_dataset_push, push_topic_dataset, read_validity_figures
from .topic_report import format_topic_table, plot_topics, topic_report

logger = logging.getLogger(__name__)

LABEL_COLUMN, TOPIC_COLUMN, TOPIC_WEIGHT_COLUMN = "label", "topic", "topic_weight"
# Columns that only score the labels (the product's category, the file a review came from): never read to make them.
EVALUATION_ONLY_COLUMNS = ("category", "source")
# Reviews decided together when labelling: the sentence encoder batches them by length within such a batch, so
# deciding the same rows in the same batches gives bit-identical embeddings.
LABEL_BATCH_SIZE = 2000
DEFAULT_CATEGORY_KEYWORDS_FILE = Path(__file__).with_name("category_keywords.json")
TOPIC_MODEL_FOLDER, TOPICS_REPORT, TOPICS_CHART = "topic_model", "topics.json", "topics.png"
KEYWORD_WINDOW = 20  # a topic's category is decided by its top words


def label_names(other_class: bool) -> list[str]:
    return [*CATEGORY_NAMES, OTHER_LABEL] if other_class else list(CATEGORY_NAMES)


# Topic -> category ---------------------------------------------------------------------------------------------------


def read_category_keywords(path: str | os.PathLike) -> dict[str, list[str]]:
    """`{"books": ["book", "read", ...], ...}`, every key one of `CATEGORY_NAMES`; words NMF-cleaned like the text."""
    keywords = _read_json(path, "category keywords")
    if not isinstance(keywords, dict):
        raise ValueError(f"{path}: expected an object mapping category names to keyword lists")
    unknown = sorted(set(keywords) - set(CATEGORY_NAMES))
    if unknown:
        raise ValueError(f"{path}: unknown categor(ies) {unknown}; the categories are {CATEGORY_NAMES}")
    cleaned = {}
    for category, words in keywords.items():
        if not isinstance(words, list) or not all(isinstance(word, str) for word in words):
            raise ValueError(f"{path}: keywords of {category!r} must be a list of strings")
        cleaned[category] = sorted({clean_for_topics(word) for word in words} - {""})
    return cleaned


def read_topic_categories(path: str | os.PathLike, num_topics: int) -> dict[int, str | None]:
    """An explicit `{"<topic id>": "<category>" or null}` that overrides the keyword mapping for the topics it names."""
    override = _read_json(path, "topic categories")
    if not isinstance(override, dict):
        raise ValueError(f'{path}: expected an object like {{"3": "music", "7": null}}')
    mapping = {}
    for topic, category in override.items():
        try:
            topic_id = int(topic)
        except ValueError:
            raise ValueError(f"{path}: topic {topic!r} is not a topic number") from None
        if not 0 <= topic_id < num_topics:
            raise ValueError(f"{path}: topic {topic_id} does not exist (topics are 0-{num_topics - 1})")
        if category is not None and category not in CATEGORY_NAMES:
            raise ValueError(f"{path}: topic {topic_id} -> {category!r} is not one of {CATEGORY_NAMES} (or null)")
        mapping[topic_id] = category
    return mapping


def _read_json(path: str | os.PathLike, what: str):
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} file not found: {path}") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from error


def keyword_scores(topic_model: TopicModel, keywords: dict[str, list[str]]) -> list[dict[str, float]]:
    """For each topic, the share of its top words' weight that falls on each category's keywords."""
    word_index = {word: index for index, word in enumerate(topic_model.vocabulary)}
    scores = []
    for topic_words in topic_model.components:
        top = np.argsort(-topic_words, kind="stable")[:KEYWORD_WINDOW]
        top_weight = topic_words[top].sum()
        in_top = set(top.tolist())
        scores.append({
            category: float(
                sum(topic_words[word_index[word]] for word in words if word_index.get(word) in in_top) / top_weight
            ) if top_weight > 0 else 0.0
            for category, words in sorted(keywords.items())
        })
    return scores


def map_topics_to_categories(
    scores: list[dict[str, float]], min_keyword_share: float, override: dict[int, str | None] | None = None
) -> list[str | None]:
    """The best-scoring category of each topic when its share reaches `min_keyword_share` (ties: alphabetical),
    else None; `override` replaces the result for the topics it names."""
    categories = []
    for topic_scores in scores:
        best = max(sorted(topic_scores), key=lambda category: topic_scores[category], default=None)
        categories.append(best if best is not None and topic_scores[best] >= min_keyword_share else None)
    for topic, category in (override or {}).items():
        categories[topic] = category
    return categories


def refuse_evaluation_columns(reviews: Dataset) -> None:
    """The labeller learns from text alone: a column that only scores the labels must not be within its reach."""
    present = [name for name in EVALUATION_ONLY_COLUMNS if name in reviews.column_names]
    if present:
        raise ValueError(f"The topic labeller reads review text only; remove the evaluation-only column(s) {present} "
                         f"before labelling (they are for scoring the labels, see benchmarks/topic_validity.py)")


def label_reviews(
    reviews: Dataset, topic_model: TopicModel, other_class: bool = True, num_proc: int | None = None
) -> tuple[Dataset, Counter, Counter]:
    """`topic` (dominant), `topic_weight` (its share) and the `label` of each review from `TopicModel.decide`. A review
    no category holds becomes `other`, or with `other_class=False` is dropped (`drop_other`). Returns the labelled
    reviews, the count of every reason a review got no category, and the dominant-topic count of every review."""
    refuse_evaluation_columns(reviews)
    names = label_names(other_class=True)
    label_ids = {name: index for index, name in enumerate(names)}

    def assign(batch):
        decisions = topic_model.decide(batch[TEXT_COLUMN], batch[NMF_TEXT_COLUMN])
        return {
            TOPIC_COLUMN: decisions.dominant_topics.tolist(),
            TOPIC_WEIGHT_COLUMN: decisions.dominant_shares.astype(np.float32).tolist(),
            LABEL_COLUMN: [label_ids.get(category or OTHER_LABEL, 0) for category in decisions.categories],
            "no_category_reason": [reason or "" for reason in decisions.reasons],
        }

    features = Features({
        **reviews.features, TOPIC_COLUMN: Value("int32"), TOPIC_WEIGHT_COLUMN: Value("float32"),
        LABEL_COLUMN: ClassLabel(names=names), "no_category_reason": Value("string"),
    })
    assigned = reviews.map(assign, batched=True, batch_size=LABEL_BATCH_SIZE, features=features, num_proc=num_proc,
                           desc="Labelling reviews")
    no_category, topic_counts = Counter(), Counter()
    for batch in assigned.select_columns(["no_category_reason", TOPIC_COLUMN]).iter(batch_size=LABEL_BATCH_SIZE):
        no_category.update(reason for reason in batch["no_category_reason"] if reason)  # in batches: flat memory
        topic_counts.update(batch[TOPIC_COLUMN])
    assigned = assigned.remove_columns("no_category_reason")
    return (assigned if other_class else drop_other(assigned)), no_category, topic_counts


def drop_other(labelled: Dataset) -> Dataset:
    """The six-class reviews of a labelling with `other`: those reviews dropped, the label's `other` name removed."""
    other = label_names(other_class=True).index(OTHER_LABEL)
    kept = labelled.filter(lambda labels: [label != other for label in labels], input_columns=LABEL_COLUMN,
                           batched=True, desc="Dropping other")
    return kept.cast_column(LABEL_COLUMN, ClassLabel(names=label_names(other_class=False)))


def without_other_class(result: "TopicDataset") -> "TopicDataset":
    """What `--no_other_class` gives, from a labelling with `other`: the same decisions, the unplaced reviews dropped
    (the report counts them by reason, per split, as dropped while labelling)."""
    splits = DatasetDict({name: drop_other(split) for name, split in result.splits.items()})
    names = label_names(other_class=False)
    report = {
        **result.report,
        "categories": names,
        "settings": {**result.report["settings"], "other_class": False},
        "category_sizes": category_sizes(splits, names),
        "dropped_while_labelling": result.report["no_category"],
    }
    for name, split in splits.items():
        logger.info("%s: dropped %d reviews that no category holds (--no_other_class)", name,
                    len(result.splits[name]) - len(split))
    return TopicDataset(splits=splits, topic_model=result.topic_model, report=report)


# The command -------------------------------------------------------------------------------------------------------


@dataclass
class TopicLabelArguments:
    """How reviews are filtered, split, topic-modelled and mapped to categories (shared with train_topic.py)."""

    num_topics: int = field(default=60, metadata={"help": "Number of NMF topics."})
    min_df: float = field(
        default=5, metadata={"help": "Ignore words in fewer documents: a whole number of documents, or a fraction < 1."}
    )
    max_df: float = field(
        default=0.5, metadata={"help": "Ignore words in more documents: a fraction <= 1, or a whole number > 1."}
    )
    max_features: int | None = field(default=20000, metadata={"help": "Vocabulary size cap (most frequent words)."})
    embedding_precision: str = field(
        default="auto",
        metadata={"help": "Precision of the sentence encoder: 'auto' is bf16 on a GPU with bf16 or a CPU with native "
                  "bf16 (AVX512-BF16, AMX), float32 elsewhere; 'fp32' or 'bf16' force one. Saved with the topic model.",
                  "choices": list(EMBEDDING_PRECISIONS)},
    )
    max_topic_fit_reviews: int | None = field(
        default=100_000,
        metadata={"help": "Fit TF-IDF + NMF and map topics on at most this many training reviews (a seeded sample), so "
                  "memory stays flat as the data grows; every review is still labelled. None: all of train."},
    )
    ignore_filler_words: bool = field(
        default=True,
        metadata={"help": "Keep review praise and filler (great, love, price, ...) out of the topic vocabulary."},
    )
    mention_filter: bool = field(
        default=True, metadata={"help": "Keep only reviews that mention Amazon (--no_mention_filter keeps all)."}
    )
    mention_pattern: str = field(
        default=DEFAULT_MENTION_PATTERN,
        metadata={"help": "Python regex (case-insensitive) searched in title and text by the mention filter."},
    )
    strict: bool = field(
        default=False,
        metadata={"help": "Stop at the first malformed rating instead of dropping (and counting) those reviews."},
    )
    other_class: bool = field(
        default=True,
        metadata={"help": f"Label reviews no category holds {OTHER_LABEL!r} (a 7th class); --no_other_class keeps the "
                  f"six categories and drops those reviews (counted)."},
    )
    topic_mapping: str = field(
        default="embedding",
        metadata={"help": "'embedding': a topic's affinity to each category is the softmax of the sentence-embedding "
                  "similarity of its typical reviews with the category descriptions (data_prep/topic_mapping.py); "
                  "'keywords': all its weight to the category whose keywords hold most of its top words.",
                  "choices": ["embedding", "keywords"]},
    )
    sentence_encoder: str | None = field(
        default=None,
        metadata={"help": "Sentence encoder folder for the embedding mapping and --review_weight (default: the "
                  "packaged all-MiniLM-L6-v2)."},
    )
    affinity_temperature: float = field(
        default=0.04, metadata={"help": "embedding: softmax temperature over the similarities (lower: harder)."}
    )
    min_subject_mass: float = field(
        default=DEFAULT_DECISION["min_subject_mass"],
        metadata={"help": "A review gets a category only if its non-generic topics hold at least this share (0-1)."},
    )
    min_category_share: float = field(
        default=DEFAULT_DECISION["min_category_share"],
        metadata={"help": "... and the category holds at least this share of that subject weight (0-1)."},
    )
    review_weight: float = field(
        default=DEFAULT_DECISION["review_weight"],
        metadata={"help": "Share of a review's evidence that comes from its own sentence embedding's similarity to the "
                  "category descriptions (the rest from its topic mixture); 0: topics alone, no review is embedded."},
    )
    review_temperature: float = field(
        default=DEFAULT_DECISION["review_temperature"],
        metadata={"help": "Softmax temperature over a review's similarities to the descriptions (lower: harder)."},
    )
    category_keywords: str = field(
        default=str(DEFAULT_CATEGORY_KEYWORDS_FILE),
        metadata={"help": f"JSON of keywords per category {CATEGORY_NAMES} (keyword mapping; reported either way)."},
    )
    min_keyword_share: float = field(
        default=0.2,
        metadata={"help": f"keywords: a topic maps to the category whose keywords hold the largest share of its top "
                  f"{KEYWORD_WINDOW} words' weight, if at least this share; else to none."},
    )
    topic_categories: str | None = field(
        default=None,
        metadata={"help": 'JSON {"<topic>": "<category>" or null} overriding the mapping for those topics (null: the '
                  'topic weighs for nothing, like a generic one).'},
    )
    validation_fraction: float = field(default=0.1, metadata={"help": "Share of the reviews for validation."})
    test_fraction: float = field(default=0.1, metadata={"help": "Share of the reviews for test."})
    min_category_size: int = field(
        default=50, metadata={"help": "Report categories with fewer training reviews than this as too small."}
    )
    label_sample: int | None = field(
        default=None,
        metadata={"help": "Label only this many reviews, a seeded random sample spread over the splits in proportion "
                  "(the rest are counted, not kept): embedding each review is the slow part of labelling. The topic "
                  "model is still fit on the whole train split, so the sample's labels are the ones a full labelling "
                  "gives; a classifier trained on them labels the rest (scripts/demo.sh)."},
    )


@dataclass
class TopicFilesArguments(ReviewSourceArguments):
    """The reviews to label (local files, or a Hub dataset with `ReviewSourceArguments`) and where the result goes."""

    output_dir: str = field(default=None, metadata={"help": "Where the DatasetDict, topics.json, topics.png and "
                                                   "topic_model/ go.", "required": True})
    input_file: list[str] | None = field(
        default=None, metadata={"help": "Review files: Amazon Review Full's header-less CSVs (rating,title,review), "
                                "headed csv, json/jsonl or parquet; or give --dataset_name."}
    )
    seed: int = field(default=42, metadata={"help": "Seed of the split and of the NMF initialization."})
    num_proc: int | None = field(default=None, metadata={"help": "Processes for the datasets steps."})
    push_to_hub: bool = field(
        default=False, metadata={"help": "Push the labelled dataset (parquet splits, topic_model/, topics.json and a "
                                 "generated dataset card) to --hub_dataset_id."}
    )
    hub_dataset_id: str | None = field(default=None, metadata={"help": "<user or organization>/<dataset name>."})
    hub_token: str | None = field(default=None, metadata={"help": "Hub token (default: HF_TOKEN or the saved one)."})
    hub_private_repo: bool = field(default=False, metadata={"help": "Create the dataset repo private."})

    def __post_init__(self):
        if bool(self.input_file) == bool(self.dataset_name):
            raise ValueError("Give the reviews as --input_file FILE [FILE ...] or as --dataset_name, one of the two")
        if self.push_to_hub:
            check_dataset_push(self.hub_dataset_id, self.hub_token)


@dataclass
class TopicDataset:
    splits: DatasetDict
    topic_model: TopicModel
    report: dict


@dataclass
class TopicMappingEvidence:
    """Why each topic got its affinities: keyword shares always, embedding similarities and typical reviews when
    the embedding mapping ran, and the topics the override file set."""

    keyword_scores: list[dict[str, float]]
    embedding_scores: np.ndarray | None = None
    typical_reviews: list[list[str]] | None = None
    overridden: dict[int, str | None] = field(default_factory=dict)


def map_topics(topic_model: TopicModel, train: Dataset, options: TopicLabelArguments) -> TopicMappingEvidence:
    """Set the topic model's affinities and decision thresholds from the train split's text."""
    refuse_evaluation_columns(train)
    decision = checked_decision({name: getattr(options, name) for name in DEFAULT_DECISION})
    keywords = read_category_keywords(options.category_keywords)
    evidence = TopicMappingEvidence(keyword_scores=keyword_scores(topic_model, keywords))
    if options.topic_mapping == "embedding" or options.review_weight > 0:
        encoder = options.sentence_encoder or default_sentence_encoder()
        topic_model.embedding_precision = options.embedding_precision
        topic_model.anchor_vectors = anchor_vectors(CATEGORY_NAMES, encoder, options.embedding_precision)
        # an absolute path travels with the saved topic model (None: the packaged encoder)
        topic_model.sentence_encoder = (str(Path(options.sentence_encoder).resolve()) if options.sentence_encoder
                                        else None)
    if options.topic_mapping == "embedding":
        texts = train[TEXT_COLUMN]
        scores, examples = embedding_scores(topic_model.topic_weights(train[NMF_TEXT_COLUMN]), texts,
                                            topic_model.anchor_vectors, encoder, options.embedding_precision)
        topic_model.topic_affinities = soft_affinities(scores, options.affinity_temperature)
        evidence.embedding_scores = scores
        evidence.typical_reviews = [[texts[index] for index in indices] for indices in examples]
    elif options.topic_mapping == "keywords":
        topic_model.set_topic_categories(map_topics_to_categories(evidence.keyword_scores, options.min_keyword_share))
    else:
        raise ValueError(f"--topic_mapping must be 'embedding' or 'keywords', got {options.topic_mapping!r}")
    if options.topic_categories:
        evidence.overridden = read_topic_categories(options.topic_categories, topic_model.num_topics)
        for topic, category in evidence.overridden.items():
            topic_model.topic_affinities[topic] = topic_model.hard_affinity(category)
    topic_model.decision = decision
    return evidence


def fit_topics(
    input_files: Sequence[str | os.PathLike] | None,
    options: TopicLabelArguments,
    seed: int = 42,
    num_proc: int | None = None,
    source_args: ReviewSourceArguments | None = None,
):
    """Read and clean, split, fit topics on train and map them to categories: everything before labelling. Returns
    the reviews read (`load_amazon_reviews`), the unlabelled splits, the topic model and the mapping evidence."""
    reviews = load_amazon_reviews(
        input_files, mention_filter=options.mention_filter, mention_pattern=options.mention_pattern, num_proc=num_proc,
        strict=options.strict, source_args=source_args,
    )
    splits = split_reviews(reviews.dataset, options.validation_fraction, options.test_fraction, seed)
    fit_reviews = topic_fit_sample(splits["train"], options.max_topic_fit_reviews, seed)
    topic_model = TopicModel.fit(
        fit_reviews[NMF_TEXT_COLUMN], num_topics=options.num_topics, min_df=options.min_df,
        max_df=options.max_df, max_features=options.max_features, seed=seed,
        ignore_filler_words=options.ignore_filler_words,
    )
    evidence = map_topics(topic_model, fit_reviews, options)
    return reviews, splits, topic_model, evidence


def build_topic_dataset(
    input_files: Sequence[str | os.PathLike] | None,
    options: TopicLabelArguments,
    seed: int = 42,
    num_proc: int | None = None,
    source_args: ReviewSourceArguments | None = None,
) -> TopicDataset:
    """Read and clean (files, or the Hub dataset of `source_args`), split, fit topics on train, map them to categories
    and label every split."""
    reviews, splits, topic_model, evidence = fit_topics(input_files, options, seed=seed, num_proc=num_proc,
                                                        source_args=source_args)
    if options.label_sample is not None:
        splits = sample_splits(splits, options.label_sample, seed)

    labelled, no_category, topic_counts = {}, {}, {}
    for name, split in splits.items():
        started = time.perf_counter()
        labelled[name], no_category[name], topic_counts[name] = label_reviews(split, topic_model, num_proc=num_proc)
        logger.info("%s: %d of %d reviews have a category (labelled in %.0f s); no category: %s", name,
                    len(split) - sum(no_category[name].values()), len(split), time.perf_counter() - started,
                    dict(no_category[name]) or "none")
    splits = DatasetDict(labelled)
    sizes = category_sizes(splits, label_names(other_class=True))
    report = topic_report(topic_model, evidence, topic_counts, sizes, reviews, no_category, options, seed)
    for warning in report["warnings"]:
        logger.warning(warning)
    result = TopicDataset(splits=splits, topic_model=topic_model, report=report)
    return result if options.other_class else without_other_class(result)


def category_sizes(splits: DatasetDict, names: list[str]) -> dict[str, dict[str, int]]:
    """Reviews per label name in each split."""
    return {name: dict(zip(names, np.bincount(split[LABEL_COLUMN], minlength=len(names)).tolist()))
            for name, split in splits.items()}


def save_topic_dataset(result: TopicDataset, output_dir: str | os.PathLike) -> None:
    output_dir = Path(output_dir)
    result.splits.save_to_disk(str(output_dir))
    result.topic_model.save(output_dir / TOPIC_MODEL_FOLDER)
    (output_dir / TOPICS_REPORT).write_text(json.dumps(result.report, indent=2) + "\n", encoding="utf-8")
    plot_topics(result.report, output_dir / TOPICS_CHART)
    logger.info("Wrote the topic dataset, %s, %s and %s/ to %s", TOPICS_REPORT, TOPICS_CHART, TOPIC_MODEL_FOLDER,
                output_dir)


def load_topic_dataset(folder: str | os.PathLike) -> TopicDataset:
    """What `save_topic_dataset` wrote: the labelled splits, the topic model and the report."""
    folder = Path(folder)
    return TopicDataset(splits=load_from_disk(str(folder)), topic_model=TopicModel.load(folder / TOPIC_MODEL_FOLDER),
                        report=json.loads((folder / TOPICS_REPORT).read_text(encoding="utf-8")))



def main(argv: list[str] | None = None) -> TopicDataset:
    parser = HfArgumentParser((TopicFilesArguments, TopicLabelArguments))
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 1 and argv[0].endswith(".json"):
        files_args, options = parser.parse_json_file(json_file=os.path.abspath(argv[0]))
    else:
        files_args, options = parser.parse_args_into_dataclasses(args=argv)
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO,
                        handlers=[logging.StreamHandler(sys.stdout)])
    result = build_topic_dataset(files_args.input_file, options, seed=files_args.seed, num_proc=files_args.num_proc,
                                 source_args=files_args)
    save_topic_dataset(result, files_args.output_dir)
    logger.info("Topics:\n%s", format_topic_table(result.report))
    logger.info("Category sizes: %s", result.report["category_sizes"])
    if files_args.push_to_hub:
        push_topic_dataset(files_args.output_dir, result.splits, result.report, files_args.hub_dataset_id,
                           validity=read_validity_figures(PROJECT_VALIDITY_FIGURES, asdict(TopicLabelArguments())),
                           token=files_args.hub_token,
                           private=files_args.hub_private_repo)
    return result


if __name__ == "__main__":
    main()
