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
import math
import os
import re
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value, load_from_disk
from safetensors.numpy import load_file, save_file
from sklearn.decomposition import NMF
from sklearn.feature_extraction.text import TfidfVectorizer
from transformers import HfArgumentParser

from .amazon import DEFAULT_MENTION_PATTERN, NMF_TEXT_COLUMN, TEXT_COLUMN, clean_for_topics, load_amazon_reviews
from .topic_mapping import (
    GENERIC_ANCHOR, anchor_names, anchor_vectors, default_sentence_encoder, embed_texts, embedding_scores,
    soft_affinities,
)

logger = logging.getLogger(__name__)

CATEGORY_NAMES = ["books", "games", "movies", "music", "refund-and-return", "video-quality"]  # ClassLabel order
MEDIA_CATEGORIES = ("books", "games", "movies", "music")
OTHER_LABEL = "other"  # the last class with --other_class (the default): reviews no category holds
# Columns that only score the labels (the product's category, the file a review came from): never read to make them.
EVALUATION_ONLY_COLUMNS = ("category", "source")
# A theme is about what a review says, not what product it is: it counts only in a review that uses its own words,
# and a review that no product category holds but that uses them gets the theme. "Return" alone is not enough: tax
# software reviews are full of tax returns.
THEME_WORDS = {
    "refund-and-return": re.compile(
        r"\b(?:refund\w*|money back|exchang(?:e|ed|ing) (?:it|them|for)|replacement|sent (?:it|them) back"
        r"|return(?:ed|ing)? (?:it|them|the (?:item|product|unit|book|dvd|game|cd))|return policy|returnable)\b",
        re.IGNORECASE),
    "video-quality": re.compile(
        r"\b(?:picture quality|video quality|image quality|resolution|hd|blu-?ray|widescreen|grainy|pixelated"
        r"|(?:dvd|video|picture) transfer|aspect ratio)\b", re.IGNORECASE),
}
LABEL_COLUMN, TOPIC_COLUMN, TOPIC_WEIGHT_COLUMN = "label", "topic", "topic_weight"
# Reviews decided together when labelling: the sentence encoder batches them by length within such a batch, so
# deciding the same rows in the same batches gives bit-identical embeddings.
LABEL_BATCH_SIZE = 2000
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
NO_TOPIC_WORDS = "no topic vocabulary words"
ONLY_GENERIC_TOPICS = "too little subject weight (generic topics only)"
SUBJECT_IS_NO_CATEGORY = "its subject is none of the categories"
NO_CLEAR_CATEGORY = "no category holds enough of its subject weight"
# Chosen on validation by benchmarks/topic_labeller_selection.py (a test keeps them equal to its selection).
DEFAULT_DECISION = {"min_subject_mass": 0.3, "min_category_share": 0.5, "review_weight": 0.5,
                    "review_temperature": 0.02}


def checked_decision(settings: dict | None) -> dict:
    """`DEFAULT_DECISION` updated with `settings`, each a share in [0, 1] (the temperature positive)."""
    unknown = sorted(set(settings or {}) - set(DEFAULT_DECISION))
    if unknown:
        raise ValueError(f"Unknown decision setting(s) {unknown}; the settings are {sorted(DEFAULT_DECISION)}")
    decision = {**DEFAULT_DECISION, **(settings or {})}
    for name, value in decision.items():
        valid = value > 0 if name == "review_temperature" else 0 <= value <= 1
        if not valid:
            bound = "positive" if name == "review_temperature" else "in [0, 1]"
            raise ValueError(f"--{name} must be {bound}, got {value}")
    return decision


def label_names(other_class: bool) -> list[str]:
    return [*CATEGORY_NAMES, OTHER_LABEL] if other_class else list(CATEGORY_NAMES)


@dataclass
class TopicDecisions:
    """What the labeller decided for each review and from which topics: the category (None: no category holds it),
    why not when None, the dominant topic and its share, the topic that gave the category most weight, and the
    evidence every category received (from the review's topic mixture, blended with its own embedding's)."""

    categories: list[str | None]
    reasons: list[str | None]
    dominant_topics: np.ndarray
    dominant_shares: np.ndarray
    supporting_topics: np.ndarray
    category_mass: np.ndarray


class TopicModel:
    """A fitted TF-IDF vocabulary and NMF topics: labels NMF-cleaned or raw review text with its dominant topic.

    Saved as JSON (vocabulary, idf, settings, topic affinities, the decision thresholds) and safetensors (the
    topic-word matrix and the anchors' sentence-embedding vectors), never pickle. A topic's weight for a review is its
    share of the review's total topic weight. Each topic lends its weight to the anchors (the categories and the kinds
    of review that are none of them) in proportion to its affinities; with anchor vectors, the review's own sentence
    embedding lends its weight too (`review_weight`); `decide` turns the evidence into a category or None.
    """

    def __init__(
        self,
        vocabulary: list[str],
        idf: np.ndarray,
        components: np.ndarray,
        nmf_options: dict,
        topic_categories: list[str | None] | None = None,
        topic_affinities: np.ndarray | None = None,
        decision: dict | None = None,
        anchor_vectors: np.ndarray | None = None,
        sentence_encoder: str | None = None,
    ):
        self.vocabulary = list(vocabulary)
        self.components = np.asarray(components, dtype=np.float64)
        self.nmf_options = dict(nmf_options)
        self.anchors = anchor_names(CATEGORY_NAMES)
        self.decision = decision
        self.anchor_vectors = None if anchor_vectors is None else np.asarray(anchor_vectors, dtype=np.float32)
        self.sentence_encoder = sentence_encoder  # None: the packaged all-MiniLM-L6-v2
        if self.anchor_vectors is not None and len(self.anchor_vectors) != len(self.anchors):
            raise ValueError(f"{len(self.anchor_vectors)} anchor vectors for {len(self.anchors)} anchors")
        if self.components.shape[1] != len(self.vocabulary) or len(idf) != len(self.vocabulary):
            raise ValueError(
                f"Topic model shapes disagree: {len(self.vocabulary)} words, {len(idf)} idf values, "
                f"components {self.components.shape}"
            )
        if topic_affinities is not None:
            self.topic_affinities = np.asarray(topic_affinities, dtype=np.float64)
        else:
            self.set_topic_categories(topic_categories if topic_categories is not None else [None] * self.num_topics)
        if self.topic_affinities.shape != (self.num_topics, len(self.anchors)):
            raise ValueError(f"Topic affinities of shape {self.topic_affinities.shape} for {self.num_topics} topics "
                             f"and {len(self.anchors)} anchors")
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
    def topic_categories(self) -> list[str | None]:
        """Each topic's category: its strongest anchor when that is a category, else None."""
        best = self.topic_affinities.argmax(axis=1)
        return [self.anchors[index] if index < len(CATEGORY_NAMES) else None for index in best]

    def set_topic_categories(self, categories: Sequence[str | None]) -> None:
        """Hard affinities: all of a topic's weight to its category; a None topic weighs for nothing (generic)."""
        if len(categories) != self.num_topics:
            raise ValueError(f"{len(categories)} topic categories for {self.num_topics} topics")
        self.topic_affinities = np.array([self.hard_affinity(category) for category in categories])

    def hard_affinity(self, category: str | None) -> np.ndarray:
        """A topic's affinities when all its weight goes to `category` (None: to the generic anchor)."""
        row = np.zeros(len(self.anchors))
        row[self.anchors.index(category if category is not None else f"none: {GENERIC_ANCHOR}")] = 1.0
        return row

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

    def topic_shares(self, nmf_texts: Sequence[str]) -> np.ndarray:
        """(texts, topics) share of each text's topic weight; a row of zeros for a text with no vocabulary word."""
        weights = self.topic_weights(nmf_texts)
        totals = weights.sum(axis=1, keepdims=True)
        return np.divide(weights, totals, out=np.zeros_like(weights), where=totals > 0)

    @property
    def decision(self) -> dict:
        """The thresholds and weights `decide` uses (`DEFAULT_DECISION` where a setting is not given)."""
        return self._decision

    @decision.setter
    def decision(self, settings: dict | None) -> None:
        self._decision = checked_decision(settings)

    @property
    def uses_review_embedding(self) -> bool:
        return self.anchor_vectors is not None and self.decision["review_weight"] > 0

    def embed_reviews(self, texts: Sequence[str]) -> np.ndarray:
        """(texts, dim) sentence embeddings of raw reviews with the encoder the anchor vectors came from."""
        return embed_texts(texts, self.sentence_encoder or default_sentence_encoder())

    def decide(self, texts: Sequence[str], nmf_texts: Sequence[str] | None = None,
               review_vectors: np.ndarray | None = None) -> TopicDecisions:
        """The category of each raw review from its whole topic mixture and, with anchor vectors, its own embedding.

        Every topic lends its share of the review to the anchors by its affinities. With `review_weight` w > 0 the
        evidence is (1 - w) times that plus w times the review's own affinities: the softmax (`review_temperature`)
        of its embedding's similarity to each anchor vector (`review_vectors`, computed when not given). Themes lose
        what they got in a review without their own words (`THEME_WORDS`); generic evidence counts for nothing. The
        review gets the strongest anchor when the subject evidence (all but generic) reaches `min_subject_mass`, the
        anchor is a category, and it holds at least `min_category_share` of the subject evidence. Otherwise a review
        that uses a theme's words gets that theme (`theme_of`), and the rest None, with the reason. A review without a
        single topic-vocabulary word is None whatever its embedding says (emoji, another language).
        """
        texts = list(texts)
        nmf_texts = [clean_for_topics(text) for text in texts] if nmf_texts is None else list(nmf_texts)
        count = len(texts)
        if count == 0:
            empty = np.zeros(0, dtype=np.int64)
            return TopicDecisions([], [], empty, np.zeros(0), empty, np.zeros((0, len(CATEGORY_NAMES))))
        shares = self.topic_shares(nmf_texts)
        mass = shares @ self.topic_affinities
        if self.uses_review_embedding:
            vectors = self.embed_reviews(texts) if review_vectors is None else np.asarray(review_vectors)
            if vectors.shape != (count, self.anchor_vectors.shape[1]):
                raise ValueError(f"review_vectors of shape {vectors.shape} for {count} reviews and anchor vectors "
                                 f"of dimension {self.anchor_vectors.shape[1]}")
            weight = self.decision["review_weight"]
            review_mass = soft_affinities(vectors @ self.anchor_vectors.T, self.decision["review_temperature"])
            mass = (1 - weight) * mass + weight * review_mass
        for theme, words in THEME_WORDS.items():
            column = self.anchors.index(theme)
            mass[[not words.search(text or "") for text in texts], column] = 0.0
        generic = self.anchors.index(f"none: {GENERIC_ANCHOR}")
        subject = np.delete(mass, generic, axis=1)
        subject_names = [name for index, name in enumerate(self.anchors) if index != generic]
        subject_total = subject.sum(axis=1)
        best = subject.argmax(axis=1)
        has_words = shares.sum(axis=1) > 0
        categories, reasons = [], []
        for row in range(count):
            name = subject_names[best[row]]
            if not has_words[row]:
                reason = NO_TOPIC_WORDS
            elif subject_total[row] < self.decision["min_subject_mass"]:
                reason = ONLY_GENERIC_TOPICS
            elif name not in CATEGORY_NAMES:
                reason = SUBJECT_IS_NO_CATEGORY
            elif subject[row, best[row]] < self.decision["min_category_share"] * subject_total[row]:
                reason = NO_CLEAR_CATEGORY
            else:
                reason = None
            if reason is not None:
                theme = self.theme_of(texts[row], mass[row])
                if theme is not None:
                    name, reason = theme, None
            categories.append(name if reason is None else None)
            reasons.append(reason)
        dominant = np.where(has_words, shares.argmax(axis=1), NO_TOPIC).astype(np.int64)
        supporting = np.array([
            self.supporting_topic(shares[row], category) if category else dominant[row]
            for row, category in enumerate(categories)
        ], dtype=np.int64)
        return TopicDecisions(
            categories=categories, reasons=reasons, dominant_topics=dominant,
            dominant_shares=shares.max(axis=1), supporting_topics=supporting,
            category_mass=mass[:, :len(CATEGORY_NAMES)],
        )

    def theme_of(self, text: str, mass: np.ndarray) -> str | None:
        """The theme a review no product category holds is about: one whose words it uses (both: the one its topics
        favour, refund-and-return on a tie); None when it uses neither's words."""
        present = [theme for theme, words in THEME_WORDS.items() if words.search(text or "")]
        if not present:
            return None
        return max(present, key=lambda theme: (mass[self.anchors.index(theme)], -present.index(theme)))

    def supporting_topic(self, shares: np.ndarray, category: str) -> int:
        """The topic that gives `category` the most weight in a review with these topic shares (`NO_TOPIC` if none)."""
        contribution = shares * self.topic_affinities[:, self.anchors.index(category)]
        return int(contribution.argmax()) if contribution.max() > 0 else NO_TOPIC

    def decision_words(self, texts: Sequence[str], categories: Sequence[str | None], n: int = 8) -> list[list[str]]:
        """For each raw review, the top words of the topic behind `category` in its mixture: the words the label came
        from. For `other` (or no category) the words of its dominant topic; [] when it has no topic at all."""
        nmf_texts = [clean_for_topics(text) for text in texts]
        shares = self.topic_shares(nmf_texts) if nmf_texts else np.zeros((0, self.num_topics))
        words = self.topic_top_words(n)
        found = []
        for row, category in enumerate(categories):
            if shares[row].sum() == 0:
                found.append([])
                continue
            topic = (self.supporting_topic(shares[row], category) if category in CATEGORY_NAMES
                     else int(shares[row].argmax()))
            found.append(words[topic] if topic != NO_TOPIC else [])
        return found

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
            "anchors": self.anchors,
            "topic_affinities": self.topic_affinities.round(6).tolist(),
            "decision": self.decision,
            "sentence_encoder": self.sentence_encoder,
            "theme_words": {theme: words.pattern for theme, words in THEME_WORDS.items()},
            "text_cleaning": "data_prep.amazon.clean_for_topics",
        }
        (folder / _TOPIC_MODEL_CONFIG).write_text(json.dumps(config, indent=1) + "\n", encoding="utf-8")
        tensors = {"components": np.ascontiguousarray(self.components)}
        if self.anchor_vectors is not None:
            tensors["anchor_vectors"] = np.ascontiguousarray(self.anchor_vectors)
        save_file(tensors, str(folder / _TOPIC_MODEL_WEIGHTS))

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
        if "anchors" in config and config["anchors"] != anchor_names(CATEGORY_NAMES):
            raise ValueError(f"{config_path}: affinity anchors {config['anchors']} differ from this code's")
        tensors = load_file(str(weights_path))
        return cls(
            vocabulary=config["vocabulary"],
            idf=np.asarray(config["idf"]),
            components=tensors["components"],
            nmf_options=config["nmf_options"],
            topic_categories=config["topic_categories"],
            topic_affinities=np.asarray(config["topic_affinities"]) if "topic_affinities" in config else None,
            # saved before reviews were embedded: those decided from topics alone
            decision={"review_weight": 0.0, **config.get("decision", {})},
            anchor_vectors=tensors.get("anchor_vectors"),
            sentence_encoder=config.get("sentence_encoder"),
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
    no_category = Counter(reason for reason in assigned["no_category_reason"] if reason)
    topic_counts = Counter(assigned[TOPIC_COLUMN])
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

    num_topics: int = field(default=60, metadata={"help": "Number of NMF topics."})
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
        topic_model.anchor_vectors = anchor_vectors(CATEGORY_NAMES, encoder)
        # an absolute path travels with the saved topic model (None: the packaged encoder)
        topic_model.sentence_encoder = (str(Path(options.sentence_encoder).resolve()) if options.sentence_encoder
                                        else None)
    if options.topic_mapping == "embedding":
        texts = train[TEXT_COLUMN]
        scores, examples = embedding_scores(topic_model.topic_weights(train[NMF_TEXT_COLUMN]), texts,
                                            topic_model.anchor_vectors, encoder)
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
    input_files: Sequence[str | os.PathLike],
    options: TopicLabelArguments,
    seed: int = 42,
    num_proc: int | None = None,
):
    """Read and clean, split, fit topics on train and map them to categories: everything before labelling. Returns
    the reviews read (`load_amazon_reviews`), the unlabelled splits, the topic model and the mapping evidence."""
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
    evidence = map_topics(topic_model, splits["train"], options)
    return reviews, splits, topic_model, evidence


def build_topic_dataset(
    input_files: Sequence[str | os.PathLike],
    options: TopicLabelArguments,
    seed: int = 42,
    num_proc: int | None = None,
) -> TopicDataset:
    """Read and clean, split, fit topics on train, map them to categories and label every split."""
    reviews, splits, topic_model, evidence = fit_topics(input_files, options, seed=seed, num_proc=num_proc)

    labelled, no_category, topic_counts = {}, {}, {}
    for name, split in splits.items():
        started = time.perf_counter()
        labelled[name], no_category[name], topic_counts[name] = label_reviews(split, topic_model, num_proc=num_proc)
        logger.info("%s: %d of %d reviews have a category (labelled in %.0f s); no category: %s", name,
                    len(split) - sum(no_category[name].values()), len(split), time.perf_counter() - started,
                    dict(no_category[name]) or "none")
    splits = DatasetDict(labelled)
    report = topic_report(topic_model, evidence, topic_counts, splits, reviews, no_category, options, seed)
    for warning in report["warnings"]:
        logger.warning(warning)
    result = TopicDataset(splits=splits, topic_model=topic_model, report=report)
    return result if options.other_class else without_other_class(result)


def topic_report(topic_model, evidence, topic_counts, splits, reviews, no_category, options, seed) -> dict:
    """Every topic (top words, sizes, category and why: its affinities, embedding similarities, keyword shares and
    typical reviews), label sizes per split, and every review that got no category, by reason."""
    top_words = topic_model.topic_top_words(10)
    order = np.argsort(-topic_model.components, axis=1, kind="stable")[:, :10]
    names = label_names(other_class=True)
    categories = topic_model.topic_categories
    topics = []
    for topic in range(topic_model.num_topics):
        entry = {
            "topic": topic,
            "category": categories[topic],
            "mapped_by": "override" if topic in evidence.overridden else options.topic_mapping,
            "size": sum(counts.get(topic, 0) for counts in topic_counts.values()),
            "train_size": topic_counts["train"].get(topic, 0),
            "top_words": top_words[topic],
            "top_word_weights": [round(float(w), 5) for w in topic_model.components[topic, order[topic]]],
            "affinities": {anchor: round(float(value), 4)
                           for anchor, value in zip(topic_model.anchors, topic_model.topic_affinities[topic])
                           if value >= 0.01},
            "keyword_scores": {category: round(score, 4) for category, score in evidence.keyword_scores[topic].items()},
        }
        if evidence.embedding_scores is not None:
            entry["embedding_similarities"] = {
                anchor: round(float(value), 4) for anchor, value in zip(topic_model.anchors,
                                                                        evidence.embedding_scores[topic])}
            entry["typical_reviews"] = [text[:200] for text in evidence.typical_reviews[topic][:3]]
        topics.append(entry)
    sizes = category_sizes(splits, names)
    warnings = []
    for category in names:
        size = sizes["train"][category]
        if size == 0:
            warnings.append(f"Category {category!r} is empty: no topic maps to it or its reviews were all dropped. "
                            f"A classifier trained on this data never predicts it; see topics.json and consider "
                            f"--topic_categories or more --num_topics.")
        elif size < options.min_category_size:
            warnings.append(f"Category {category!r} has only {size} training reviews "
                            f"(fewer than --min_category_size {options.min_category_size}); its scores will be noisy.")
    no_category_counts = {name: dict(counts) for name, counts in no_category.items()}
    return {
        "categories": names,
        "settings": {**asdict(options), "seed": seed},
        "decision": topic_model.decision,
        "theme_words": {theme: words.pattern for theme, words in THEME_WORDS.items()},
        "reviews_read": reviews.rows_read,
        "reviews_after_cleaning": len(reviews.dataset),
        "dropped_while_reading": reviews.dropped,
        "no_category": no_category_counts,
        "dropped_while_labelling": {},
        "category_sizes": sizes,
        "warnings": warnings,
        "topics": topics,
    }


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
    lines = [f"{'topic':>5}  {'category':<18} {'size':>7}  {'why (affinities)':<44} top words"]
    for topic in report["topics"]:
        strongest = sorted(topic["affinities"].items(), key=lambda item: -item[1])[:2]
        why = ", ".join(f"{anchor} {value:.2f}" for anchor, value in strongest)
        lines.append(f"{topic['topic']:>5}  {topic['category'] or '-':<18} {topic['size']:>7}  {why:<44} "
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
