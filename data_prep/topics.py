"""Topic labels for Amazon reviews: TF-IDF + NMF fit on the train split, topics mapped to categories by keywords,
low-weight and unmapped reviews dropped (counted), and a report, a chart and the saved topic model.

    python -m data_prep.topics --input_file ../shared/data/amazon_*.csv.gz --no_mention_filter --output_dir topics

writes a `DatasetDict` (train / validation / test with `text`, `nmf_text`, `rating`, `topic`, `topic_weight` and the
`label` ClassLabel), `topics.json`, `topics.png` and `topic_model/` (JSON + safetensors, no pickle), which
`TopicModel.load` reads back to label new text.
"""

import json
import logging
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value
from safetensors.numpy import load_file, save_file
from sklearn.decomposition import NMF
from sklearn.feature_extraction.text import TfidfVectorizer
from transformers import HfArgumentParser

from .amazon import DEFAULT_MENTION_PATTERN, NMF_TEXT_COLUMN, clean_for_topics, load_amazon_reviews

logger = logging.getLogger(__name__)

CATEGORY_NAMES = ["books", "games", "movies", "music", "refund-and-return", "video-quality"]  # ClassLabel order
LABEL_COLUMN, TOPIC_COLUMN, TOPIC_WEIGHT_COLUMN = "label", "topic", "topic_weight"
DEFAULT_CATEGORY_KEYWORDS_FILE = Path(__file__).with_name("category_keywords.json")
TOPIC_MODEL_FOLDER, TOPICS_REPORT, TOPICS_CHART = "topic_model", "topics.json", "topics.png"
NO_TOPIC = -1
KEYWORD_WINDOW = 20  # a topic's category is decided by its top words
# Praise and filler common to reviews of anything: left in, they form "great price works" topics with no subject.
REVIEW_FILLER_WORDS = frozenset("""
    amazing awesome bad best better bought buy definitely did does easy excellent expected fantastic far fine fun get
    gets good got great happy highly item items just like liked lot love loved loves make makes nice overall perfect
    pretty product products really recommend recommended star stars thank thanks thing things time use used using
    value want way well wonderful work worked working works
""".split())

_TOPIC_MODEL_CONFIG, _TOPIC_MODEL_WEIGHTS = "topic_model.json", "topic_model.safetensors"
_TFIDF_OPTIONS = {"lowercase": True, "token_pattern": r"(?u)\b\w\w+\b", "sublinear_tf": True, "norm": "l2",
                  "smooth_idf": True}
_DROP_NO_TOPIC = "no topic vocabulary words"
_DROP_UNMAPPED = "topic maps to no category"


class TopicModel:
    """A fitted TF-IDF vocabulary and NMF topics: labels NMF-cleaned or raw review text with its dominant topic.

    Saved as JSON (vocabulary, idf, settings, topic categories) and safetensors (the topic-word matrix), never pickle.
    A topic's weight for a review is its share of the review's total topic weight (0-1).
    """

    def __init__(
        self,
        vocabulary: list[str],
        idf: np.ndarray,
        components: np.ndarray,
        nmf_options: dict,
        topic_categories: list[str | None] | None = None,
    ):
        self.vocabulary = list(vocabulary)
        self.components = np.asarray(components, dtype=np.float64)
        self.nmf_options = dict(nmf_options)
        self.topic_categories = list(topic_categories) if topic_categories is not None else [None] * self.num_topics
        if self.components.shape[1] != len(self.vocabulary) or len(idf) != len(self.vocabulary):
            raise ValueError(
                f"Topic model shapes disagree: {len(self.vocabulary)} words, {len(idf)} idf values, "
                f"components {self.components.shape}"
            )
        if len(self.topic_categories) != self.num_topics:
            raise ValueError(f"{len(self.topic_categories)} topic categories for {self.num_topics} topics")
        self._vectorizer = TfidfVectorizer(vocabulary=self.vocabulary, dtype=np.float64, **_TFIDF_OPTIONS)
        self._vectorizer.idf_ = np.asarray(idf, dtype=np.float64)
        self._nmf = NMF(**self.nmf_options)
        self._nmf.components_ = self.components
        self._nmf.n_components_ = self.num_topics
        self._nmf.n_features_in_ = len(self.vocabulary)

    @property
    def num_topics(self) -> int:
        return self.components.shape[0]

    @property
    def idf(self) -> np.ndarray:
        return self._vectorizer.idf_

    @classmethod
    def fit(
        cls,
        nmf_texts: Sequence[str],
        num_topics: int = 15,
        min_df: float = 5,
        max_df: float = 0.5,
        max_features: int | None = 20000,
        seed: int = 42,
        max_iter: int = 400,
        ignore_filler_words: bool = True,
    ) -> "TopicModel":
        """TF-IDF + NMF on NMF-cleaned texts; the same texts and seed give the same topics. `ignore_filler_words`
        keeps `REVIEW_FILLER_WORDS` out of the vocabulary."""
        if num_topics < 1:
            raise ValueError(f"num_topics must be at least 1, got {num_topics}")
        vectorizer = TfidfVectorizer(
            min_df=document_frequency(min_df, "min_df"), max_df=document_frequency(max_df, "max_df"),
            max_features=max_features, stop_words=sorted(REVIEW_FILLER_WORDS) if ignore_filler_words else None,
            dtype=np.float64, **_TFIDF_OPTIONS,
        )
        try:
            tfidf = vectorizer.fit_transform(nmf_texts)
        except ValueError as error:  # e.g. "After pruning, no terms remain"
            raise ValueError(
                f"TF-IDF found no usable vocabulary in {len(nmf_texts)} texts with min_df={min_df}, max_df={max_df}: "
                f"{error}"
            ) from error
        if tfidf.shape[1] < num_topics:
            raise ValueError(
                f"Only {tfidf.shape[1]} words survive min_df={min_df}/max_df={max_df}: too few for {num_topics} topics"
            )
        nmf = NMF(n_components=num_topics, init="nndsvda", random_state=seed, max_iter=max_iter)
        logger.info("Fitting NMF: %d topics over %d words from %d texts, up to %d iterations ...", num_topics,
                    tfidf.shape[1], tfidf.shape[0], max_iter)
        started = time.perf_counter()
        nmf.fit(tfidf)
        options = {key: value for key, value in nmf.get_params().items() if key != "verbose"}
        logger.info("NMF fitted in %.1f s (%d iterations, reconstruction error %.2f)", time.perf_counter() - started,
                    nmf.n_iter_, nmf.reconstruction_err_)
        return cls(vectorizer.get_feature_names_out().tolist(), vectorizer.idf_, nmf.components_, options)

    def topic_weights(self, nmf_texts: Sequence[str]) -> np.ndarray:
        """(texts, topics) NMF weights of NMF-cleaned texts, with the topics held fixed."""
        return self._nmf.transform(self._vectorizer.transform(nmf_texts))

    def assign(self, texts: Sequence[str], cleaned: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Dominant topic of each text and its share of the text's topic weight; `NO_TOPIC` and 0.0 for a text with no
        vocabulary word. Raw review text is NMF-cleaned first unless `cleaned=True`."""
        nmf_texts = list(texts) if cleaned else [clean_for_topics(text) for text in texts]
        if not nmf_texts:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
        weights = self.topic_weights(nmf_texts)
        totals = weights.sum(axis=1)
        topic_ids = np.where(totals > 0, weights.argmax(axis=1), NO_TOPIC)
        shares = np.divide(weights.max(axis=1), totals, out=np.zeros_like(totals), where=totals > 0)
        return topic_ids.astype(np.int64), shares

    def topic_top_words(self, n: int = 10) -> list[list[str]]:
        """The `n` heaviest words of every topic."""
        order = np.argsort(-self.components, axis=1, kind="stable")[:, :n]
        return [[self.vocabulary[index] for index in row] for row in order]

    def top_words(self, texts: Sequence[str], n: int = 8) -> list[list[str]]:
        """The top words of each raw text's dominant topic (an empty list when no topic applies)."""
        topic_ids, _ = self.assign(texts)
        words = self.topic_top_words(n)
        return [words[topic] if topic != NO_TOPIC else [] for topic in topic_ids]

    def categories_of(self, topic_ids: Sequence[int]) -> list[str | None]:
        return [self.topic_categories[topic] if topic != NO_TOPIC else None for topic in topic_ids]

    def save(self, folder: str | os.PathLike) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        config = {
            "num_topics": self.num_topics,
            "vocabulary": self.vocabulary,
            "idf": self.idf.tolist(),
            "tfidf_options": _TFIDF_OPTIONS,
            "nmf_options": self.nmf_options,
            "topic_categories": self.topic_categories,
            "text_cleaning": "data_prep.amazon.clean_for_topics",
        }
        (folder / _TOPIC_MODEL_CONFIG).write_text(json.dumps(config, indent=1) + "\n", encoding="utf-8")
        save_file({"components": np.ascontiguousarray(self.components)}, str(folder / _TOPIC_MODEL_WEIGHTS))

    @classmethod
    def load(cls, folder: str | os.PathLike) -> "TopicModel":
        folder = Path(folder)
        config_path, weights_path = folder / _TOPIC_MODEL_CONFIG, folder / _TOPIC_MODEL_WEIGHTS
        for path in (config_path, weights_path):
            if not path.is_file():
                raise FileNotFoundError(f"{folder} is not a saved topic model: {path.name} is missing")
        config = json.loads(config_path.read_text(encoding="utf-8"))
        if config.get("tfidf_options") != _TFIDF_OPTIONS:
            raise ValueError(f"{config_path}: TF-IDF options {config.get('tfidf_options')} differ from this code's")
        return cls(
            vocabulary=config["vocabulary"],
            idf=np.asarray(config["idf"]),
            components=load_file(str(weights_path))["components"],
            nmf_options=config["nmf_options"],
            topic_categories=config["topic_categories"],
        )


def document_frequency(value: float, name: str) -> int | float:
    """scikit-learn reads an int as a count of documents and a float as a fraction: a whole number above 1 (or 1 for
    min_df) is a count here, anything in (0, 1) a fraction."""
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")
    if value > 1 or (name == "min_df" and value == 1):
        if value != int(value):
            raise ValueError(f"{name} must be a fraction in (0, 1] or a whole number of documents, got {value}")
        return int(value)
    return float(value)


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


def drop_reason(topic: int, weight: float, category: str | None, min_topic_weight: float) -> str | None:
    if topic == NO_TOPIC:
        return _DROP_NO_TOPIC
    if category is None:
        return _DROP_UNMAPPED
    if weight < min_topic_weight:
        return f"topic weight below {min_topic_weight}"
    return None


def label_reviews(
    reviews: Dataset, topic_model: TopicModel, min_topic_weight: float, num_proc: int | None = None
) -> tuple[Dataset, Counter, Counter]:
    """`topic`, `topic_weight` and the category `label` of each review; reviews without a usable category are dropped.
    Returns the kept reviews, the drop counts per reason and the dominant-topic count of every review."""
    label_ids = {name: index for index, name in enumerate(CATEGORY_NAMES)}

    def assign(batch):
        topics, weights = topic_model.assign(batch[NMF_TEXT_COLUMN], cleaned=True)
        categories = topic_model.categories_of(topics)
        reasons = [drop_reason(t, w, c, min_topic_weight) for t, w, c in zip(topics, weights, categories)]
        return {
            TOPIC_COLUMN: topics.tolist(),
            TOPIC_WEIGHT_COLUMN: weights.astype(np.float32).tolist(),
            LABEL_COLUMN: [label_ids[c] if r is None else 0 for c, r in zip(categories, reasons)],
            "drop_reason": [r or "" for r in reasons],
        }

    features = Features({
        **reviews.features, TOPIC_COLUMN: Value("int32"), TOPIC_WEIGHT_COLUMN: Value("float32"),
        LABEL_COLUMN: ClassLabel(names=CATEGORY_NAMES), "drop_reason": Value("string"),
    })
    assigned = reviews.map(assign, batched=True, batch_size=2000, features=features, num_proc=num_proc,
                           desc="Assigning topics")
    dropped = Counter(reason for reason in assigned["drop_reason"] if reason)
    topic_counts = Counter(assigned[TOPIC_COLUMN])
    kept = assigned.filter(lambda reasons: [not r for r in reasons], input_columns="drop_reason", batched=True)
    return kept.remove_columns("drop_reason"), dropped, topic_counts


def split_reviews(reviews: Dataset, validation_fraction: float, test_fraction: float, seed: int) -> DatasetDict:
    """Random train/validation/test split, made before any topic is fitted (the labels do not exist yet)."""
    held_out = validation_fraction + test_fraction
    if not (0 < validation_fraction and 0 < test_fraction and held_out < 1):
        raise ValueError(
            f"validation_fraction and test_fraction must be positive with a sum below 1, got "
            f"{validation_fraction} and {test_fraction}"
        )
    if len(reviews) < 10:
        raise ValueError(f"Only {len(reviews)} reviews left after filtering: too few to split and fit topics")
    first = reviews.train_test_split(test_size=held_out, seed=seed)
    second = first["test"].train_test_split(test_size=test_fraction / held_out, seed=seed)
    return DatasetDict({"train": first["train"], "validation": second["train"], "test": second["test"]})


# The command -------------------------------------------------------------------------------------------------------


@dataclass
class TopicLabelArguments:
    """How reviews are filtered, split, topic-modelled and mapped to categories (shared with train_topic.py)."""

    num_topics: int = field(default=15, metadata={"help": "Number of NMF topics."})
    min_df: float = field(
        default=5, metadata={"help": "Ignore words in fewer documents: a whole number of documents, or a fraction < 1."}
    )
    max_df: float = field(
        default=0.5, metadata={"help": "Ignore words in more documents: a fraction <= 1, or a whole number > 1."}
    )
    max_features: int | None = field(default=20000, metadata={"help": "Vocabulary size cap (most frequent words)."})
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
    min_topic_weight: float = field(
        default=0.2,
        metadata={"help": "Drop reviews whose dominant topic holds less than this share of their topic weight (0-1)."},
    )
    category_keywords: str = field(
        default=str(DEFAULT_CATEGORY_KEYWORDS_FILE),
        metadata={"help": f"JSON of keywords per category {CATEGORY_NAMES} for the automatic topic mapping."},
    )
    min_keyword_share: float = field(
        default=0.2,
        metadata={"help": f"A topic maps to the category whose keywords hold the largest share of its top "
                  f"{KEYWORD_WINDOW} words' weight, if at least this share; else to none."},
    )
    topic_categories: str | None = field(
        default=None,
        metadata={"help": 'JSON {"<topic>": "<category>" or null} overriding the keyword mapping for those topics.'},
    )
    validation_fraction: float = field(default=0.1, metadata={"help": "Share of the reviews for validation."})
    test_fraction: float = field(default=0.1, metadata={"help": "Share of the reviews for test."})
    min_category_size: int = field(
        default=50, metadata={"help": "Report categories with fewer training reviews than this as too small."}
    )


@dataclass
class TopicFilesArguments:
    input_file: list[str] = field(
        metadata={"help": "Amazon review CSVs: headerless Review Full (rating,title,review) or with a header."}
    )
    output_dir: str = field(metadata={"help": "Where the DatasetDict, topics.json, topics.png and topic_model/ go."})
    seed: int = field(default=42, metadata={"help": "Seed of the split and of the NMF initialization."})
    num_proc: int | None = field(default=None, metadata={"help": "Processes for the datasets steps."})


@dataclass
class TopicDataset:
    splits: DatasetDict
    topic_model: TopicModel
    report: dict


def build_topic_dataset(
    input_files: Sequence[str | os.PathLike],
    options: TopicLabelArguments,
    seed: int = 42,
    num_proc: int | None = None,
) -> TopicDataset:
    """Read and clean, split, fit topics on train, map them to categories and label every split."""
    keywords = read_category_keywords(options.category_keywords)
    reviews = load_amazon_reviews(
        input_files, mention_filter=options.mention_filter, mention_pattern=options.mention_pattern, num_proc=num_proc,
        strict=options.strict,
    )
    splits = split_reviews(reviews.dataset, options.validation_fraction, options.test_fraction, seed)
    topic_model = TopicModel.fit(
        splits["train"][NMF_TEXT_COLUMN], num_topics=options.num_topics, min_df=options.min_df,
        max_df=options.max_df, max_features=options.max_features, seed=seed,
        ignore_filler_words=options.ignore_filler_words,
    )
    override = read_topic_categories(options.topic_categories, options.num_topics) if options.topic_categories else {}
    scores = keyword_scores(topic_model, keywords)
    topic_model.topic_categories = map_topics_to_categories(scores, options.min_keyword_share, override)

    labelled, dropped, topic_counts = {}, {}, {}
    for name, split in splits.items():
        labelled[name], dropped[name], topic_counts[name] = label_reviews(
            split, topic_model, options.min_topic_weight, num_proc=num_proc
        )
        logger.info("%s: kept %d of %d reviews; dropped %s", name, len(labelled[name]), len(split),
                    dict(dropped[name]) or "none")
    splits = DatasetDict(labelled)
    report = topic_report(topic_model, scores, override, topic_counts, splits, reviews, dropped, options, seed)
    for warning in report["warnings"]:
        logger.warning(warning)
    return TopicDataset(splits=splits, topic_model=topic_model, report=report)


def topic_report(topic_model, scores, override, topic_counts, splits, reviews, dropped, options, seed) -> dict:
    """Every topic (top words, sizes, category and why), category sizes per split, and what was dropped where."""
    top_words = topic_model.topic_top_words(10)
    order = np.argsort(-topic_model.components, axis=1, kind="stable")[:, :10]
    topics = []
    for topic in range(topic_model.num_topics):
        topics.append({
            "topic": topic,
            "category": topic_model.topic_categories[topic],
            "mapped_by": "override" if topic in override else "keywords",
            "size": sum(counts.get(topic, 0) for counts in topic_counts.values()),
            "train_size": topic_counts["train"].get(topic, 0),
            "top_words": top_words[topic],
            "top_word_weights": [round(float(w), 5) for w in topic_model.components[topic, order[topic]]],
            "keyword_scores": {category: round(score, 4) for category, score in scores[topic].items()},
        })
    category_sizes = {
        name: dict(zip(CATEGORY_NAMES, np.bincount(split[LABEL_COLUMN], minlength=len(CATEGORY_NAMES)).tolist()))
        for name, split in splits.items()
    }
    warnings = []
    for category in CATEGORY_NAMES:
        size = category_sizes["train"][category]
        if size == 0:
            warnings.append(f"Category {category!r} is empty: no topic maps to it or its reviews were all dropped. "
                            f"A classifier trained on this data never predicts it; see topics.json and consider "
                            f"--topic_categories or more --num_topics.")
        elif size < options.min_category_size:
            warnings.append(f"Category {category!r} has only {size} training reviews "
                            f"(fewer than --min_category_size {options.min_category_size}); its scores will be noisy.")
    return {
        "categories": CATEGORY_NAMES,
        "settings": {**asdict(options), "seed": seed},
        "reviews_read": reviews.rows_read,
        "reviews_after_cleaning": len(reviews.dataset),
        "dropped_while_reading": reviews.dropped,
        "dropped_while_labelling": {name: dict(counts) for name, counts in dropped.items()},
        "category_sizes": category_sizes,
        "warnings": warnings,
        "topics": topics,
    }


def save_topic_dataset(result: TopicDataset, output_dir: str | os.PathLike) -> None:
    output_dir = Path(output_dir)
    result.splits.save_to_disk(str(output_dir))
    result.topic_model.save(output_dir / TOPIC_MODEL_FOLDER)
    (output_dir / TOPICS_REPORT).write_text(json.dumps(result.report, indent=2) + "\n", encoding="utf-8")
    plot_topics(result.report, output_dir / TOPICS_CHART)
    logger.info("Wrote the topic dataset, %s, %s and %s/ to %s", TOPICS_REPORT, TOPICS_CHART, TOPIC_MODEL_FOLDER,
                output_dir)


def plot_topics(report: dict, path: str | os.PathLike, words_per_topic: int = 10) -> None:
    """One horizontal bar chart of top-word weights per topic, titled with its category and size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    topics = report["topics"]
    columns = min(5, len(topics))
    rows = math.ceil(len(topics) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.8 * rows), squeeze=False)
    for axis in axes.flat[len(topics):]:
        axis.set_visible(False)
    for axis, topic in zip(axes.flat, topics):
        words = topic["top_words"][:words_per_topic][::-1]
        weights = topic["top_word_weights"][:words_per_topic][::-1]
        color = "tab:blue" if topic["category"] else "tab:gray"
        axis.barh(words, weights, color=color)
        axis.set_title(f"{topic['topic']}: {topic['category'] or 'unmapped'} ({topic['size']:,})", fontsize=10)
        axis.tick_params(axis="y", labelsize=8)
        axis.tick_params(axis="x", labelsize=7)
    figure.suptitle("Top words per NMF topic (grey: no category)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def format_topic_table(report: dict) -> str:
    """The topic table as text: id, category, size and top words."""
    lines = [f"{'topic':>5}  {'category':<18} {'size':>7}  top words"]
    for topic in report["topics"]:
        lines.append(f"{topic['topic']:>5}  {topic['category'] or '-':<18} {topic['size']:>7}  "
                     f"{', '.join(topic['top_words'][:8])}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> TopicDataset:
    parser = HfArgumentParser((TopicFilesArguments, TopicLabelArguments))
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 1 and argv[0].endswith(".json"):
        files_args, options = parser.parse_json_file(json_file=os.path.abspath(argv[0]))
    else:
        files_args, options = parser.parse_args_into_dataclasses(args=argv)
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO,
                        handlers=[logging.StreamHandler(sys.stdout)])
    result = build_topic_dataset(files_args.input_file, options, seed=files_args.seed, num_proc=files_args.num_proc)
    save_topic_dataset(result, files_args.output_dir)
    logger.info("Topics:\n%s", format_topic_table(result.report))
    logger.info("Category sizes: %s", result.report["category_sizes"])
    return result


if __name__ == "__main__":
    main()
