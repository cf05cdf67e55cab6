"""Amazon reviews -> `datasets`: readers for Amazon Review Full (headerless) and headed CSVs, the Amazon mention
filter, and the two cleanings (bag of words for NMF, light normalization for transformers).

Every step works on memory-mapped Arrow tables, so the 3M-row Review Full file streams through without being
loaded into memory; `num_proc` spreads the Python-level steps over processes.
"""

import csv
import html
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import fsspec
import pyarrow.compute as pc
from datasets import Dataset, Features, Value, concatenate_datasets, load_dataset
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from .text import join_title_and_body

logger = logging.getLogger(__name__)

RATING_COLUMN, TITLE_COLUMN, REVIEW_COLUMN = "rating", "title", "review"
AMAZON_COLUMNS = [RATING_COLUMN, TITLE_COLUMN, REVIEW_COLUMN]  # Review Full's column order, no header line
TEXT_COLUMN, NMF_TEXT_COLUMN = "text", "nmf_text"
RATINGS = range(1, 6)

# "amazon" as a whole word in any case: amazon.com, Amazon's and AMAZON count; "Amazonian" and "AmazonBasics" do not.
DEFAULT_MENTION_PATTERN = r"\bamazon\b"

CLEAN_FEATURES = Features(
    {RATING_COLUMN: Value("int8"), TEXT_COLUMN: Value("string"), NMF_TEXT_COLUMN: Value("string")}
)
_RATING_TEXT = r"^\s*[1-5](\.0*)?\s*$"
_NUMBER_TEXT = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$"
_OTHER_DELIMITERS = ("\t", ";", "|")


@dataclass
class AmazonReviews:
    """Reviews with `rating` (None when unknown), `text` (for transformers) and `nmf_text` (for NMF), and what each
    step dropped (for logs and the topic report)."""

    dataset: Dataset
    rows_read: int
    dropped: dict[str, int] = field(default_factory=dict)


def load_amazon_reviews(
    paths: Sequence[str | os.PathLike],
    mention_filter: bool = True,
    mention_pattern: str = DEFAULT_MENTION_PATTERN,
    num_proc: int | None = None,
) -> AmazonReviews:
    """Read the files, drop reviews without text, keep Amazon mentions (optional) and add both cleanings."""
    raw = read_amazon_files(paths, num_proc=num_proc)
    dropped = {}
    reviews = drop_reviews_without_text(raw, num_proc=num_proc)
    dropped["no title or review text"] = len(raw) - len(reviews)
    if mention_filter:
        mentioning = filter_mentions(reviews, mention_pattern, num_proc=num_proc)
        dropped[f"no match for {mention_pattern!r}"] = len(reviews) - len(mentioning)
        reviews = mentioning
    else:
        logger.info("Mention filter off: all %d reviews with text are kept", len(reviews))
    cleaned = clean_reviews(reviews, num_proc=num_proc)
    topic_ready = cleaned.filter(
        lambda texts: [bool(text) for text in texts], input_columns=NMF_TEXT_COLUMN, batched=True,
        num_proc=num_proc, desc="Dropping reviews with no content words",
    )
    dropped["no content words left after NMF cleaning"] = len(cleaned) - len(topic_ready)
    for reason, count in dropped.items():
        logger.info("Dropped %d reviews: %s", count, reason)
    logger.info("Amazon reviews: read %d, kept %d", len(raw), len(topic_ready))
    return AmazonReviews(dataset=topic_ready, rows_read=len(raw), dropped=dropped)


# Reading -----------------------------------------------------------------------------------------------------------


def read_amazon_files(paths: Sequence[str | os.PathLike], num_proc: int | None = None) -> Dataset:
    """Each file read on its own and aligned to `rating, title, review` (their other columns differ), then
    concatenated."""
    if not paths:
        raise ValueError("No Amazon review files given")
    parts = [read_amazon_file(path, num_proc=num_proc) for path in paths]
    return parts[0] if len(parts) == 1 else concatenate_datasets(parts)


def read_amazon_file(path: str | os.PathLike, num_proc: int | None = None) -> Dataset:
    """One CSV (optionally compressed): Review Full's headerless `rating,title,review`, or a header naming at least
    those three columns. Ratings stay text here, checked to be 1-5 or empty."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Amazon review file not found: {path}")
    if path.stat().st_size == 0:
        raise ValueError(f"Amazon review file is empty: {path}")
    first_rows = _first_csv_rows(path, 2)
    header = _header_columns(first_rows[0], path)
    if len(first_rows) == int(header is not None):
        raise ValueError(f"Amazon review file has no reviews: {path}")
    options = {"column_names": AMAZON_COLUMNS, "header": None} if header is None else {"usecols": header}
    as_text = Features({name: Value("string") for name in header or AMAZON_COLUMNS})
    try:
        dataset = load_dataset(
            "csv", data_files=str(path), split="train", features=as_text, keep_default_na=False, na_values=[""],
            num_proc=num_proc, **options,
        )
    except Exception as error:  # datasets wraps pandas' parser errors in its own exception types
        cause = error.__cause__ or error
        raise ValueError(f"Could not read {path} as CSV with columns {AMAZON_COLUMNS}: {cause}") from error
    if header is not None:
        dataset = dataset.rename_columns(
            {name: role for name, role in zip(header, AMAZON_COLUMNS) if name != role}
        ).select_columns(AMAZON_COLUMNS)
    if len(dataset) == 0:
        raise ValueError(f"Amazon review file has no reviews: {path}")
    check_ratings(dataset, source=str(path), has_header=header is not None)
    logger.info("%s: read %d reviews (%s)", path, len(dataset), "header" if header else "headerless Review Full")
    return dataset


def _first_csv_rows(path: Path, count: int) -> list[list[str]]:
    with fsspec.open(str(path), "rt", compression="infer", encoding="utf-8", newline="") as handle:
        try:
            rows = [row for row, _ in zip(csv.reader(handle), range(count))]
        except (csv.Error, UnicodeDecodeError) as error:
            raise ValueError(f"Could not read {path} as UTF-8 CSV: {error}") from error
    if not rows:
        raise ValueError(f"Amazon review file is empty: {path}")
    return rows


def _header_columns(first_row: list[str], path: Path) -> list[str] | None:
    """The file's names for rating/title/review if the first row is a header; None for headerless Review Full."""
    by_name = {name.strip().lower(): name for name in first_row}
    if set(AMAZON_COLUMNS) <= by_name.keys():
        return [by_name[name] for name in AMAZON_COLUMNS]
    if len(first_row) == 1 and any(delimiter in first_row[0] for delimiter in _OTHER_DELIMITERS):
        found = next(delimiter for delimiter in _OTHER_DELIMITERS if delimiter in first_row[0])
        raise ValueError(
            f"{path}: the first line has no commas but contains {found!r}: Amazon review files must be "
            f"comma-separated (rating,title,review)"
        )
    if len(first_row) == len(AMAZON_COLUMNS) and re.match(_NUMBER_TEXT + "|^$", first_row[0]):
        return None
    missing = sorted(set(AMAZON_COLUMNS) - by_name.keys())
    raise ValueError(
        f"{path}: missing column(s) {missing}. Expected a header with {AMAZON_COLUMNS} (other columns are ignored) "
        f"or Amazon Review Full's headerless rows `rating,title,review`; the first row is {first_row[:8]}"
    )


def check_ratings(dataset: Dataset, source: str, has_header: bool = True) -> None:
    """Ratings must be 1-5 or empty (unknown); the first other value is reported with its row."""
    ratings = dataset.data.column(RATING_COLUMN)
    valid = pc.or_(pc.is_null(ratings), pc.match_substring_regex(ratings, _RATING_TEXT))
    bad_rows = pc.indices_nonzero(pc.invert(valid))
    if len(bad_rows) == 0:
        return
    row = bad_rows[0].as_py()
    value = ratings[row].as_py()
    line = row + 1 + int(has_header)
    problem = "is outside 1-5" if re.match(_NUMBER_TEXT, value) else "is not a number"
    raise ValueError(
        f"{source}: rating {value!r} on line {line} {problem}; ratings must be 1-5, or empty when unknown "
        f"({len(bad_rows)} row(s) affected)"
    )


def parse_rating(value: str | None) -> int | None:
    return int(float(value)) if value is not None else None


# Filters -----------------------------------------------------------------------------------------------------------


def drop_reviews_without_text(dataset: Dataset, num_proc: int | None = None) -> Dataset:
    """Reviews with neither a title nor a review text carry nothing to learn from."""

    def has_text(titles, reviews):
        return [bool((title and title.strip()) or (review and review.strip())) for title, review in zip(titles, reviews)]

    kept = dataset.filter(
        has_text, input_columns=[TITLE_COLUMN, REVIEW_COLUMN], batched=True, num_proc=num_proc,
        desc="Dropping reviews without text",
    )
    logger.info("Text filter: kept %d of %d reviews (%d without title or text)", len(kept), len(dataset),
                len(dataset) - len(kept))
    return kept


def compile_mention_pattern(pattern: str) -> re.Pattern:
    try:
        return re.compile(pattern, re.IGNORECASE)
    except re.error as error:
        raise ValueError(f"Invalid mention pattern {pattern!r}: {error}") from error


def mentions(pattern: re.Pattern, title: str | None, review: str | None) -> bool:
    return bool((title and pattern.search(title)) or (review and pattern.search(review)))


def filter_mentions(
    dataset: Dataset, pattern: str = DEFAULT_MENTION_PATTERN, num_proc: int | None = None
) -> Dataset:
    """Reviews whose title or text matches `pattern` (a Python regex, case-insensitive)."""
    compiled = compile_mention_pattern(pattern)

    def mention_mask(titles, reviews):
        return [mentions(compiled, title, review) for title, review in zip(titles, reviews)]

    kept = dataset.filter(
        mention_mask, input_columns=[TITLE_COLUMN, REVIEW_COLUMN], batched=True, num_proc=num_proc,
        desc=f"Keeping reviews that match {pattern!r}",
    )
    logger.info("Mention filter %r: kept %d of %d reviews (dropped %d)", pattern, len(kept), len(dataset),
                len(dataset) - len(kept))
    return kept


# Cleaning ----------------------------------------------------------------------------------------------------------

_HTML_TAG = re.compile(r"<[^>]+>")
_URL = re.compile(r"\b(?:https?://|www\.)\S+", re.IGNORECASE)
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "`": "'", "\u00b4": "'"})
_WHOLE_CONTRACTIONS = {
    "won't": "will not", "can't": "can not", "shan't": "shall not", "ain't": "is not", "let's": "let us",
    "y'all": "you all", "ma'am": "madam", "o'clock": "of the clock",
}
_WHOLE_CONTRACTION = re.compile(r"\b(?:" + "|".join(map(re.escape, _WHOLE_CONTRACTIONS)) + r")\b")
_IS_CONTRACTION = re.compile(r"\b(it|that|what|there|here|he|she|who|where|how|this|everything|nothing)'s\b")
_SUFFIX_CONTRACTIONS = [
    (re.compile(r"n't\b"), " not"), (re.compile(r"'re\b"), " are"), (re.compile(r"'m\b"), " am"),
    (re.compile(r"'ll\b"), " will"), (re.compile(r"'ve\b"), " have"), (re.compile(r"'d\b"), " would"),
    (re.compile(r"'s\b"), ""),  # the remaining 's are possessives: "amazon's" -> "amazon"
]
_NOT_LETTERS = re.compile(r"[\W\d_]+")
STOP_WORDS = frozenset(ENGLISH_STOP_WORDS)


def expand_contractions(text: str) -> str:
    """Lower-case text with straight apostrophes: "didn't" -> "did not", "it's" -> "it is", "amazon's" -> "amazon".
    Must run before punctuation is stripped, or the apostrophes it needs are gone."""
    text = _WHOLE_CONTRACTION.sub(lambda match: _WHOLE_CONTRACTIONS[match.group(0)], text)
    text = _IS_CONTRACTION.sub(r"\1 is", text)
    for pattern, replacement in _SUFFIX_CONTRACTIONS:
        text = pattern.sub(replacement, text)
    return text


def clean_for_topics(text: str | None) -> str:
    """Bag-of-words text for TF-IDF/NMF: HTML and URLs removed, lower-cased, contractions expanded, punctuation and
    digits stripped, stop words and one-letter tokens removed."""
    if not text:
        return ""
    text = _HTML_TAG.sub(" ", html.unescape(text))
    text = _URL.sub(" ", text)
    text = expand_contractions(text.lower().translate(_APOSTROPHES))
    words = _NOT_LETTERS.sub(" ", text).split()
    return " ".join(word for word in words if len(word) > 1 and word not in STOP_WORDS)


def clean_reviews(dataset: Dataset, num_proc: int | None = None) -> Dataset:
    """`rating` as an integer (None when unknown), `text` for transformers (title and review, lightly normalized)
    and `nmf_text` for topic modelling; the raw title and review are dropped."""

    def clean(batch):
        return {
            RATING_COLUMN: [parse_rating(value) for value in batch[RATING_COLUMN]],
            TEXT_COLUMN: [join_title_and_body(t, r) for t, r in zip(batch[TITLE_COLUMN], batch[REVIEW_COLUMN])],
            NMF_TEXT_COLUMN: [
                clean_for_topics(f"{t or ''} {r or ''}") for t, r in zip(batch[TITLE_COLUMN], batch[REVIEW_COLUMN])
            ],
        }

    return dataset.map(
        clean, batched=True, remove_columns=dataset.column_names, features=CLEAN_FEATURES, num_proc=num_proc,
        desc="Cleaning review text",
    )
