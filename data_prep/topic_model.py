"""The fitted topic model that labelling and serving both load: a TF-IDF vocabulary and NMF topics, each topic's
affinities to the categories, and the decision that turns a review's topic mixture (and, with anchor vectors, its own
sentence embedding) into one of the categories or none.

Saved as JSON + safetensors (no pickle) by `TopicModel.save`; `TopicModel.load` reads it back to decide new text the
same way. Fitting the topics to a split and mapping them to categories is `data_prep.topics`.
"""

import json
import logging
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file
from sklearn.decomposition import NMF
from sklearn.feature_extraction.text import TfidfVectorizer

from .text import clean_for_topics
from .topic_mapping import GENERIC_ANCHOR, anchor_names, default_sentence_encoder, embed_texts, soft_affinities

logger = logging.getLogger(__name__)

CATEGORY_NAMES = ["books", "games", "movies", "music", "refund-and-return", "video-quality"]  # ClassLabel order
MEDIA_CATEGORIES = ("books", "games", "movies", "music")
OTHER_LABEL = "other"  # the last class with --other_class (the default): reviews no category holds
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
NO_TOPIC = -1
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
DEFAULT_DECISION = {"min_subject_mass": 0.5, "min_category_share": 0.5, "review_weight": 0.7,
                    "review_temperature": 0.05}



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
        embedding_precision: str = "auto",
    ):
        self.vocabulary = list(vocabulary)
        self.components = np.asarray(components, dtype=np.float64)
        self.nmf_options = dict(nmf_options)
        self.anchors = anchor_names(CATEGORY_NAMES)
        self.decision = decision
        self.anchor_vectors = None if anchor_vectors is None else np.asarray(anchor_vectors, dtype=np.float32)
        self.sentence_encoder = sentence_encoder  # None: the packaged all-MiniLM-L6-v2
        self.embedding_precision = embedding_precision  # topic_mapping.autocast_dtype: "auto" is decided per machine
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
        return embed_texts(texts, self.sentence_encoder or default_sentence_encoder(),
                           precision=self.embedding_precision)

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

    def topic_top_words(self, n: int = 10) -> list[list[str]]:
        """The `n` heaviest words of every topic."""
        order = np.argsort(-self.components, axis=1, kind="stable")[:, :n]
        return [[self.vocabulary[index] for index in row] for row in order]

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
            "embedding_precision": self.embedding_precision,
            "theme_words": {theme: words.pattern for theme, words in THEME_WORDS.items()},
            "text_cleaning": "data_prep.text.clean_for_topics",
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
            embedding_precision=config.get("embedding_precision", "fp32"),  # saved before there was a choice
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
