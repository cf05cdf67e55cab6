"""Where reviews come from and which columns hold what, the `run_classification.py` way: a Hub dataset (name,
config, revision, split names) or local csv / json / jsonl / parquet files (compressed too), read with `datasets`;
the text, title, rating and age columns named by flags, or found from the columns by a built-in layout.

The layouts cover the real schemas: Women's E-Commerce Clothing Reviews (Kaggle's CSV and the Hub copy, which has no
title), Amazon Review Full (headerless `rating,title,review` CSVs), Amazon Review Polarity and `amazon_polarity`
(`label,title,content`, where the label is sentiment, not stars), and McAuley-Lab/Amazon-Reviews-2023 review files
(`rating,title,text`).
"""

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from datasets import ClassLabel, Dataset, DatasetDict, Features, Value, load_dataset

logger = logging.getLogger(__name__)

ROLES = ("text", "title", "rating", "age")
ROLE_FLAGS = {"text": "--text_column_name", "title": "--title_column_name", "rating": "--label_column_name",
              "age": "--age_column_name"}
SPLIT_ALIASES = {"train": ("train", "training"), "validation": ("validation", "valid", "val", "dev"),
                 "test": ("test", "testing")}
STAR_NAME = re.compile(r"^\s*([1-5])(?:\.0+)?(?:\s*stars?)?\s*$", re.IGNORECASE)  # "5", "5.0", "5 stars"
FILE_BUILDERS = {".csv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}


@dataclass(frozen=True)
class ColumnLayout:
    """A known schema: its column for each role it has (a title is optional: text alone is fine)."""

    name: str
    description: str
    columns: dict[str, str]
    headerless_order: tuple[str, ...] | None = None  # the columns of its header-less CSV files

    def describe(self) -> str:
        return f"{self.name} ({self.description}: {list(self.columns.values())})"


LAYOUTS = (
    ColumnLayout("clothing-kaggle", "Women's E-Commerce Clothing Reviews as on Kaggle",
                 {"text": "Review Text", "title": "Title", "rating": "Rating", "age": "Age"}),
    ColumnLayout("clothing-hub", "the Hub copy saattrupdan/womens-clothing-ecommerce-reviews, no title",
                 {"text": "review_text", "title": "title", "rating": "rating", "age": "age"}),
    ColumnLayout("amazon-review-full", "Xiang Zhang's Amazon Review Full, header-less or with this header",
                 {"text": "review", "title": "title", "rating": "rating"}, ("rating", "title", "review")),
    ColumnLayout("mcauley-2023", "McAuley-Lab/Amazon-Reviews-2023 review files",
                 {"text": "text", "title": "title", "rating": "rating"}),
    ColumnLayout("amazon-polarity", "amazon_polarity / Amazon Review Polarity; its label is sentiment, not stars",
                 {"text": "content", "title": "title"}, ("label", "title", "content")),
)
LAYOUT_NAMES = tuple(layout.name for layout in LAYOUTS)


@dataclass
class ReviewSourceArguments:
    """A Hub dataset and its splits, and the columns to read (flags override the layout found from the columns)."""

    dataset_name: str | None = field(
        default=None, metadata={"help": "Hub dataset id (or a local dataset folder), e.g. "
                                "saattrupdan/womens-clothing-ecommerce-reviews."}
    )
    dataset_config_name: str | None = field(
        default=None, metadata={"help": "The dataset's configuration, e.g. raw_review_Books."}
    )
    dataset_revision: str | None = field(
        default=None, metadata={"help": "Branch, tag or commit of the Hub dataset (pin it for a repeatable run)."}
    )
    train_split_name: str | None = field(default=None, metadata={"help": "Default: train."})
    validation_split_name: str | None = field(
        default=None, metadata={"help": "Default: validation, valid, val or dev, whichever the data has."}
    )
    test_split_name: str | None = field(default=None, metadata={"help": "Default: test (or testing)."})
    text_column_name: str | None = field(default=None, metadata={"help": "Column of the review text."})
    title_column_name: str | None = field(default=None, metadata={"help": "Column of the review title (optional)."})
    label_column_name: str | None = field(default=None, metadata={"help": "Column of the 1-5 star rating."})
    age_column_name: str | None = field(default=None, metadata={"help": "Column of the reviewer's age (clothing)."})
    column_layout: str | None = field(
        default=None, metadata={"help": "A built-in layout instead of the one found from the columns; for header-less "
                                "CSVs it names the columns (default amazon-review-full).", "choices": list(LAYOUT_NAMES)}
    )

    def column_flags(self) -> dict[str, str | None]:
        return {"text": self.text_column_name, "title": self.title_column_name, "rating": self.label_column_name,
                "age": self.age_column_name}


@dataclass
class RawReviews:
    """The splits as read (source column names), and a name for the logs and cards."""

    splits: dict[str, Dataset]
    source: str


def star_ratings_as_text(dataset: Dataset, column: str, source: str) -> Dataset:
    """The rating column as text ("1" ... "5", None when unknown), whatever its type: a class label is read through its
    names, which must name stars ("1 star" ... "5 stars", or "1" ... "5"; its index is not the rating), a number as
    itself (NaN: unknown)."""
    feature = dataset.features[column]
    if feature == Value("string"):
        return dataset
    as_text = Features({**dataset.features, column: Value("string")})
    if isinstance(feature, ClassLabel):
        stars = [STAR_NAME.match(name) for name in feature.names]
        if not all(stars):
            raise ValueError(f"{source}: the rating column {column!r} is a class label named {feature.names}, not "
                             f"1-5 stars; name the star rating with --label_column_name, or choose a layout without "
                             f"one with --column_layout")
        names = [match.group(1) for match in stars]
        convert = lambda values: [None if value is None else names[value] for value in values]  # noqa: E731
    elif isinstance(feature, Value) and (feature.dtype.startswith(("int", "uint", "float"))):
        convert = lambda values: [None if value is None or value != value else f"{value:g}" for value in values]  # noqa: E731
    else:
        raise ValueError(f"{source}: the rating column {column!r} holds {feature}, not 1-5 star ratings")
    return dataset.map(lambda batch: {column: convert(batch[column])}, batched=True, features=as_text,
                       desc=f"Reading {column!r} as star ratings")


def layout_named(name: str | None) -> ColumnLayout | None:
    if name is None:
        return None
    for layout in LAYOUTS:
        if layout.name == name:
            return layout
    raise ValueError(f"Unknown column layout {name!r}; the layouts are {list(LAYOUT_NAMES)}")


def resolve_columns(column_names: list[str], source: str, required: tuple[str, ...],
                    args: ReviewSourceArguments | None = None) -> dict[str, str | None]:
    """Role -> column (None for an optional role the data lacks): the flags given, the rest from the first layout whose
    required columns the data has (names matched ignoring case and spaces around them). A named column that is missing, or data no layout fits, is one error listing the
    columns found."""
    args = args or ReviewSourceArguments()
    flags = {role: column for role, column in args.column_flags().items() if column}
    for role, column in flags.items():
        if column not in column_names:
            raise ValueError(f"{source}: {ROLE_FLAGS[role]} {column!r} is not a column; the columns are {column_names}")
    forced = layout_named(args.column_layout)
    candidates = [forced] if forced else [*LAYOUTS, ColumnLayout("flags", "the column flags alone", {})]
    by_name = {str(column).strip().lower(): column for column in column_names}  # "Rating" or " rating" match too
    for layout in candidates:
        mapping = {role: flags.get(role) or by_name.get(layout.columns.get(role, "").lower()) for role in ROLES}
        if all(mapping[role] for role in required):
            found = {role: column for role, column in mapping.items() if column}
            logger.info("%s: columns %s (layout %s)", source, found, layout.name)
            return mapping
    needed = ", ".join(f"{role} ({ROLE_FLAGS[role]})" for role in required)
    layouts = "; ".join(layout.describe() for layout in candidates if layout.columns)
    raise ValueError(f"{source}: cannot tell which columns hold the {needed}; the columns are {column_names}. Name "
                     f"them with the flags, or give data in a known layout: {layouts}")


def file_builder(path: str | os.PathLike) -> str:
    """The `datasets` builder for a file: json for .json/.jsonl, parquet for .parquet (`.parquet.brotli`, `.json.gz`
    and the like too), csv for anything else."""
    suffixes = [suffix.lower() for suffix in Path(path).suffixes]
    return next((FILE_BUILDERS[suffix] for suffix in reversed(suffixes) if suffix in FILE_BUILDERS), "csv")


def check_file(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Review file not found: {path}")
    if path.stat().st_size == 0:
        raise ValueError(f"Review file is empty: {path}")
    return path


def read_review_file(path: str | os.PathLike, **csv_options) -> Dataset:
    """One local file as a `Dataset`, with one clear error when it cannot be read."""
    path = check_file(path)
    builder = file_builder(path)
    try:
        dataset = load_dataset(builder, data_files=str(path), split="train",
                               **(csv_options if builder == "csv" else {}))
    except Exception as error:  # datasets wraps the parsers' errors in several exception types
        raise ValueError(f"Could not read {path} as {builder}: {error.__cause__ or error}") from error
    if len(dataset) == 0:
        raise ValueError(f"Review file has no rows: {path}")
    return dataset


def find_split(available: list[str], role: str, requested: str | None, source: str) -> str | None:
    """The split that plays `role` (train / validation / test): the one named, else the first alias present."""
    if requested is not None:
        if requested not in available:
            raise ValueError(f"{source}: no split {requested!r} for {role}; the splits are {available}")
        return requested
    return next((name for name in SPLIT_ALIASES[role] if name in available), None)


def hub_source(args: ReviewSourceArguments) -> str:
    """`name@revision (config)`: the Hub dataset as logs and cards name it."""
    revision = f"@{args.dataset_revision}" if args.dataset_revision else ""
    return args.dataset_name + revision + (f" ({args.dataset_config_name})" if args.dataset_config_name else "")


def read_hub_dataset(args: ReviewSourceArguments) -> RawReviews:
    """The Hub dataset's train / validation / test splits (as many as it has), under those role names."""
    source = hub_source(args)
    loaded = load_dataset(args.dataset_name, args.dataset_config_name, revision=args.dataset_revision)
    if not isinstance(loaded, DatasetDict):
        loaded = DatasetDict({"train": loaded})
    available = list(loaded)
    requested = {"train": args.train_split_name, "validation": args.validation_split_name,
                 "test": args.test_split_name}
    chosen = {role: find_split(available, role, requested[role], source) for role in SPLIT_ALIASES}
    if chosen["train"] is None and len(available) == 1 and not any(requested.values()):
        chosen["train"] = available[0]  # e.g. McAuley 2023's "full": the one split there is
    if chosen["train"] is None:
        raise ValueError(f"{source}: no train split; the splits are {available} (name one with --train_split_name)")
    unused = sorted(set(available) - set(chosen.values()))
    if unused:
        logger.info("%s: splits %s are not read (name them with --*_split_name)", source, unused)
    splits = {role: loaded[name] for role, name in chosen.items() if name is not None}
    logger.info("%s: read %s", source, {f"{role} ({chosen[role]})": len(split) for role, split in splits.items()})
    return RawReviews(splits=splits, source=source)


def read_local_files(files: dict[str, str | None]) -> RawReviews:
    """One local file per split role, e.g. {"train": "reviews.csv", "validation": None, "test": "test.jsonl"}."""
    splits = {role: read_review_file(path) for role, path in files.items() if path}
    return RawReviews(splits=splits, source=", ".join(str(path) for path in files.values() if path))
