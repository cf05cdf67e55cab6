"""How reviews are split and sampled for topic labelling: the train/validation/test split made before any topic is
fitted, the training reviews the topics are fitted on, and the reviews a `--label_sample` run labels."""

import logging

from datasets import Dataset, DatasetDict

logger = logging.getLogger(__name__)


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


def topic_fit_sample(train: Dataset, limit: int | None, seed: int) -> Dataset:
    """The training reviews the topics are fitted on: all of them, or a seeded sample of `limit` (logged)."""
    if limit is not None and limit < 10:
        raise ValueError(f"--max_topic_fit_reviews must be at least 10 reviews (or None for all), got {limit}")
    if limit is None or len(train) <= limit:
        return train
    logger.info("Fitting topics on a seeded sample of %d of the %d training reviews (--max_topic_fit_reviews)", limit,
                len(train))
    return train.shuffle(seed=seed).select(range(limit))


def sample_splits(splits: DatasetDict, total: int, seed: int) -> DatasetDict:
    """`total` reviews drawn at random (seeded) from the splits in proportion to their sizes; the rest counted."""
    available = sum(len(split) for split in splits.values())
    if total <= 0:
        raise ValueError(f"--label_sample must be a positive number of reviews, got {total}")
    if total >= available:
        logger.info("--label_sample %d: all %d reviews are labelled", total, available)
        return splits
    sampled = DatasetDict({name: split.shuffle(seed=seed).select(range(max(1, round(total * len(split) / available))))
                           for name, split in splits.items()})
    logger.info("--label_sample %d: labelling %s of %d reviews; %d are not labelled", total,
                {name: len(split) for name, split in sampled.items()}, available,
                available - sum(len(split) for split in sampled.values()))
    return sampled
