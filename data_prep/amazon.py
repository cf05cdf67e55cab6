"""Amazon reviews -> `datasets`: local files (Amazon Review Full's header-less CSVs, headed CSVs, json, parquet) or a
Hub dataset aligned to `rating, title, review` (`review_source` finds the columns), the Amazon mention filter, and the two cleanings (bag of words for NMF, light normalization for transformers).

Every step works on memory-mapped Arrow tables, so the 3M-row Review Full file streams through without being
loaded into memory: the filters are Arrow compute kernels (no Python per row), the cleaning a batched `datasets.map`
that `num_proc` spreads over processes.
"""

import csv
import logging
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datasets import Dataset, Features, Value, concatenate_datasets, load_dataset

from .review_source import (
    LAYOUTS, ReviewSourceArguments, check_file, file_builder, hub_source, layout_named, read_hub_dataset,
    read_review_file, resolve_columns, star_ratings_as_text,
)
from .text import clean_for_topics, join_title_and_body

logger = logging.getLogger(__name__)

RATING_COLUMN, TITLE_COLUMN, REVIEW_COLUMN = "rating", "title", "review"
AMAZON_COLUMNS = [RATING_COLUMN, TITLE_COLUMN, REVIEW_COLUMN]  # Review Full's column order, no header line
TEXT_COLUMN, NMF_TEXT_COLUMN = "text", "nmf_text"

# "amazon" as a whole word in any case: amazon.com, Amazon's and AMAZON count; "Amazonian" and "AmazonBasics" do not.
DEFAULT_MENTION_PATTERN = r"\bamazon\b"

CLEAN_FEATURES = Features(
    {RATING_COLUMN: Value("int8"), TEXT_COLUMN: Value("string"), NMF_TEXT_COLUMN: Value("string")}
)
_RATING_TEXT = r"^\s*[1-5](\.0*)?\s*$"
_NUMBER_TEXT = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$"
_OTHER_DELIMITERS = ("\t", ";", "|")
POLARITY_CHECK_ROWS = 100  # fewer rows may be all 1-2 stars by chance


@dataclass
class AmazonReviews:
    """Reviews with `rating` (None when unknown), `text` (for transformers) and `nmf_text` (for NMF), and what each
    step dropped (for logs and the topic report)."""

    dataset: Dataset
    rows_read: int
    dropped: dict[str, int] = field(default_factory=dict)
    source: str = ""
    hub_dataset: str | None = None  # the Hub dataset id the reviews came from (None: files or a local folder)


def load_amazon_reviews(
    paths: Sequence[str | os.PathLike] | None = None,
    mention_filter: bool = True,
    mention_pattern: str = DEFAULT_MENTION_PATTERN,
    num_proc: int | None = None,
    strict: bool = False,
    source_args: ReviewSourceArguments | None = None,
) -> AmazonReviews:
    """Read the files (or the Hub dataset of `source_args`), drop reviews whose rating is malformed (`strict`: stop at
    the first instead) and reviews without text, keep Amazon mentions (optional) and add both cleanings."""
    if paths:
        raw = read_amazon_files(paths, num_proc=num_proc, strict=strict, source_args=source_args)
        source = ", ".join(Path(path).name for path in paths)
    elif source_args is not None and source_args.dataset_name:
        raw, source = read_amazon_dataset(source_args, strict=strict), hub_source(source_args)
    else:
        raise ValueError("No Amazon reviews given: pass review files or a dataset name")
    dropped = {}
    rated = keep_rows_where(raw, lambda batch: valid_rating_mask(batch[RATING_COLUMN]))
    dropped["rating not 1-5 and not empty"] = len(raw) - len(rated)
    reviews = drop_reviews_without_text(rated)
    dropped["no title or review text"] = len(rated) - len(reviews)
    if mention_filter:
        mentioning = filter_mentions(reviews, mention_pattern, num_proc=num_proc)
        dropped[f"no match for {mention_pattern!r}"] = len(reviews) - len(mentioning)
        reviews = mentioning
    else:
        logger.info("Mention filter off: all %d reviews with text are kept", len(reviews))
    cleaned = clean_reviews(reviews, num_proc=num_proc)
    topic_ready = keep_rows_where(cleaned, lambda batch: pc.not_equal(batch[NMF_TEXT_COLUMN], ""))
    dropped["no content words left after NMF cleaning"] = len(cleaned) - len(topic_ready)
    for reason, count in dropped.items():
        logger.info("Dropped %d reviews: %s", count, reason)
    logger.info("Amazon reviews: read %d, kept %d", len(raw), len(topic_ready))
    hub_dataset = None if paths or os.path.isdir(source_args.dataset_name) else source_args.dataset_name
    return AmazonReviews(dataset=topic_ready, rows_read=len(raw), dropped=dropped, source=source,
                         hub_dataset=hub_dataset)


# Reading -----------------------------------------------------------------------------------------------------------


def read_amazon_files(paths: Sequence[str | os.PathLike], num_proc: int | None = None, strict: bool = False,
                      source_args: ReviewSourceArguments | None = None) -> Dataset:
    """Each file read on its own and aligned to `rating, title, review` (their other columns differ), then
    concatenated."""
    if not paths:
        raise ValueError("No Amazon review files given")
    parts = [read_amazon_file(path, num_proc=num_proc, strict=strict, source_args=source_args) for path in paths]
    return parts[0] if len(parts) == 1 else concatenate_datasets(parts)


def read_amazon_dataset(source_args: ReviewSourceArguments, strict: bool = False) -> Dataset:
    """The splits of a Hub dataset (or a local dataset folder) read, aligned to `rating, title, review` and pooled:
    the topic step splits the reviews that pass its filters itself."""
    raw = read_hub_dataset(source_args)
    parts = [to_amazon_columns(split, f"{raw.source} [{role}]", source_args) for role, split in raw.splits.items()]
    dataset = parts[0] if len(parts) == 1 else concatenate_datasets(parts)
    check_ratings(dataset, raw.source, first_line=None, strict=strict)
    return dataset


def read_amazon_file(path: str | os.PathLike, num_proc: int | None = None, strict: bool = False,
                     source_args: ReviewSourceArguments | None = None) -> Dataset:
    """One local file, aligned to `rating, title, review`. A CSV (optionally compressed) may be header-less (Review
    Full's `rating,title,review`, or Polarity's `label,title,content` with --column_layout amazon-polarity) or have a
    header; json/jsonl/parquet files name their columns. Columns are found as `resolve_columns` says. Ratings stay
    text here, checked to be 1-5 or empty: a malformed one is an error with `strict`, otherwise a warning naming its
    line (`load_amazon_reviews` drops and counts those rows)."""
    path = check_file(path)
    source_args = source_args or ReviewSourceArguments()
    header = None
    if file_builder(path) == "csv":
        first_rows = _first_csv_rows(path, 2)
        header = _csv_header(first_rows[0], path)
        if len(first_rows) == int(header is not None):
            raise ValueError(f"Amazon review file has no reviews: {path}")
        if header is None:
            layout = layout_named(source_args.column_layout) or layout_named("amazon-review-full")
            if layout.headerless_order is None:
                raise ValueError(f"{path} has no header, and layout {layout.name} has no header-less column order: "
                                 f"use {[layout.name for layout in LAYOUTS if layout.headerless_order]}")
            names = list(layout.headerless_order)
            options = {"column_names": names, "header": None}
            check_polarity = source_args.column_layout is None
        else:
            names, options, check_polarity = header, {}, False
        as_text = Features({name: Value("string") for name in names})
        dataset = read_review_file(path, features=as_text, keep_default_na=False, na_values=[""], num_proc=num_proc,
                                   **options)
    else:
        dataset, check_polarity = read_review_file(path), False
    if len(dataset) == 0:
        raise ValueError(f"Amazon review file has no reviews: {path}")
    dataset = to_amazon_columns(dataset, str(path), source_args)
    if check_polarity:
        warn_if_polarity_labels(dataset, path)
    check_ratings(dataset, str(path), first_line=1 + int(header is not None) if file_builder(path) == "csv" else None,
                  strict=strict)
    logger.info("%s: read %d reviews (%s)", path, len(dataset), "header-less CSV" if header is None else "header")
    return dataset


def to_amazon_columns(dataset: Dataset, source: str, source_args: ReviewSourceArguments) -> Dataset:
    """`rating, title, review` as text (rating and title empty where the data has none) from the columns found."""
    columns = resolve_columns(dataset.column_names, source, required=("text",), args=source_args)
    if columns["rating"] is None:
        logger.info("%s: no star rating column: ratings are left unknown", source)
    roles = {RATING_COLUMN: columns["rating"], TITLE_COLUMN: columns["title"], REVIEW_COLUMN: columns["text"]}
    kept = dataset.select_columns([column for column in roles.values() if column])
    kept = kept.rename_columns({column: role for role, column in roles.items() if column and column != role})
    for role, column in roles.items():
        if column is None:
            kept = kept.add_column(role, pa.nulls(len(kept), pa.string()))
        elif role == RATING_COLUMN:
            kept = star_ratings_as_text(kept, role, source)
        elif kept.features[role] != Value("string"):
            kept = kept.cast_column(role, Value("string"))
    return kept.select_columns(AMAZON_COLUMNS)


def warn_if_polarity_labels(dataset: Dataset, path: Path) -> None:
    """Amazon Review Polarity's header-less files look like Review Full's, but their first column is sentiment (1
    negative, 2 positive): read as stars they pass every check. Ratings that are all 1 or 2 say so in the log."""
    ratings = set(pc.unique(dataset.data.column(RATING_COLUMN)).to_pylist()) - {None}
    if len(dataset) >= POLARITY_CHECK_ROWS and ratings and ratings <= {"1", "2"}:
        logger.warning("%s: every rating is 1 or 2, as in Amazon Review Polarity, whose first column is sentiment "
                       "(1 negative, 2 positive), not stars; if that is the file, pass --column_layout "
                       "amazon-polarity", path)


def check_ratings(dataset: Dataset, source: str, first_line: int | None, strict: bool) -> None:
    problem = describe_bad_ratings(dataset, source=source, first_line=first_line)
    if problem and strict:
        raise ValueError(problem)
    if problem:
        logger.warning("%s; those rows are dropped (--strict stops instead)", problem)


def _first_csv_rows(path: Path, count: int) -> list[list[str]]:
    with fsspec.open(str(path), "rt", compression="infer", encoding="utf-8", newline="") as handle:
        try:
            rows = [row for row, _ in zip(csv.reader(handle), range(count))]
        except (csv.Error, UnicodeDecodeError) as error:
            raise ValueError(f"Could not read {path} as UTF-8 CSV: {error}") from error
    if not rows:
        raise ValueError(f"Amazon review file is empty: {path}")
    return rows


def _csv_header(first_row: list[str], path: Path) -> list[str] | None:
    """The first row's column names if it is a header; None for the header-less three-column files (Review Full,
    Polarity), whose first field is a number (or empty)."""
    if len(first_row) == 1 and any(delimiter in first_row[0] for delimiter in _OTHER_DELIMITERS):
        found = next(delimiter for delimiter in _OTHER_DELIMITERS if delimiter in first_row[0])
        raise ValueError(
            f"{path}: the first line has no commas but contains {found!r}: Amazon review files must be "
            f"comma-separated (rating,title,review)"
        )
    if len(first_row) == len(AMAZON_COLUMNS) and re.match(_NUMBER_TEXT + "|^$", first_row[0]):
        return None
    return first_row


def valid_rating_mask(ratings: pa.ChunkedArray) -> pa.ChunkedArray:
    """True where a rating (as text) is 1-5 or empty (unknown)."""
    return pc.or_kleene(pc.is_null(ratings), pc.match_substring_regex(ratings.cast(pa.string()), _RATING_TEXT))


def describe_bad_ratings(dataset: Dataset, source: str, first_line: int | None = 2) -> str | None:
    """None when every rating is 1-5 or empty (unknown); else the first other value with its line in the file (row
    number when `first_line` is None), and the count."""
    ratings = dataset.data.column(RATING_COLUMN)
    bad_rows = pc.indices_nonzero(pc.invert(valid_rating_mask(ratings)))
    if len(bad_rows) == 0:
        return None
    row = bad_rows[0].as_py()
    value = ratings[row].as_py()
    where = f"line {row + first_line}" if first_line is not None else f"row {row}"
    problem = "is outside 1-5" if re.match(_NUMBER_TEXT, value) else "is not a number"
    return (f"{source}: rating {value!r} on {where} {problem}; ratings must be 1-5, or empty when unknown "
            f"({len(bad_rows)} row(s) affected)")


def parse_rating(value: str | None) -> int | None:
    return int(float(value)) if value is not None else None


# Filters -----------------------------------------------------------------------------------------------------------
# Row masks are computed with Arrow compute kernels batch by batch over the memory-mapped table (no Python per row);
# the kept rows become an indices mapping, so nothing is copied.

_MASK_BATCH_ROWS = 100_000


def keep_rows_where(dataset: Dataset, row_mask: Callable[[pa.Table], pa.Array]) -> Dataset:
    """The rows for which `row_mask(batch)` is true (null counts as false)."""
    parts = [
        pc.fill_null(row_mask(batch), False).to_numpy(zero_copy_only=False)
        for batch in dataset.with_format("arrow").iter(batch_size=_MASK_BATCH_ROWS)
    ]
    mask = np.concatenate(parts) if parts else np.zeros(0, dtype=bool)
    return dataset if mask.all() else dataset.select(np.flatnonzero(mask))


def _text_column(batch: pa.Table, name: str) -> pa.ChunkedArray:
    """A text column as strings (a column that is all empty can arrive typed as null)."""
    return batch[name].cast(pa.string())


def _is_filled(column: pa.ChunkedArray) -> pa.ChunkedArray:
    return pc.not_equal(pc.utf8_trim_whitespace(column), "")


def drop_reviews_without_text(dataset: Dataset) -> Dataset:
    """Reviews with neither a title nor a review text carry nothing to learn from."""
    kept = keep_rows_where(
        dataset, lambda batch: pc.or_kleene(_is_filled(_text_column(batch, TITLE_COLUMN)),
                                            _is_filled(_text_column(batch, REVIEW_COLUMN)))
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


def _re2_accepts(pattern: str) -> bool:
    try:
        pc.match_substring_regex(pa.array([""]), pattern, ignore_case=True)
        return True
    except pa.ArrowInvalid:
        return False


def filter_mentions(dataset: Dataset, pattern: str = DEFAULT_MENTION_PATTERN, num_proc: int | None = None) -> Dataset:
    """Reviews whose title or text matches `pattern`, case-insensitive.

    Matched with RE2 (Arrow's vectorized regex, as pandas' pyarrow strings do; `\\b` is an ASCII word boundary) when
    RE2 accepts the pattern, else with Python's `re` (lookarounds, backreferences) over `num_proc` processes."""
    compiled = compile_mention_pattern(pattern)
    if _re2_accepts(pattern):
        def title_or_review_matches(batch):
            return pc.or_kleene(
                pc.match_substring_regex(_text_column(batch, TITLE_COLUMN), pattern, ignore_case=True),
                pc.match_substring_regex(_text_column(batch, REVIEW_COLUMN), pattern, ignore_case=True),
            )

        kept = keep_rows_where(dataset, title_or_review_matches)
    else:
        logger.info("Mention pattern %r is not RE2 syntax: matching with Python's re (slower)", pattern)

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
