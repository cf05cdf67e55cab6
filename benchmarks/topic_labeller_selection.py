"""How the labeller turns evidence into a category, chosen on the validation split: every decision setting scored
against the product category of the validation reviews, and the best one by a written rule.

    python -m benchmarks.topic_labeller_selection

Fits the default topics on the train split exactly as `python -m data_prep.topics --no_mention_filter` does, embeds
the validation reviews once, and labels them under each setting of the grid below (the review-embedding weight and
temperature, the subject-mass and category-share thresholds), with the clothing reviews of the clothing validation
split beside them (out of domain). The rule: among the settings that give at most 0.05 of the non-media reviews and
of the clothing reviews a media label and keep both themes' phrase precision at 0.90 or more (hard bounds), the one
that meets most of the issue's labeller targets, then the highest accuracy against the expected label, then the
highest media precision. The review weight stops below 1: at 1 the topics would no longer decide anything.
`data_prep.topic_model.DEFAULT_DECISION` must equal the selected setting (a test checks it); the test split is read only
by benchmarks/topic_validity.py. Last, the default labelling with every embedding in float32 and in bf16: the share of
validation reviews that get the same label, and the seconds each took (`--embedding_precision auto` rests on it).
"""

import argparse
import dataclasses
import itertools
import logging
import sys
import time

from benchmarks.common import SPLIT_SEED, amazon_files, clothing_texts, command_line, write_json
from benchmarks.topic_validity import (
    TARGETS, against_targets, media_share, product_categories, score,
)
from data_prep.amazon import NMF_TEXT_COLUMN, TEXT_COLUMN
from data_prep.topic_mapping import embedding_device, resolved_precision
from data_prep.topic_model import DEFAULT_DECISION, OTHER_LABEL
from data_prep.review_splits import topic_fit_sample
from data_prep.topics import TopicLabelArguments, fit_topics, map_topics

logger = logging.getLogger("topic_labeller_selection")

GRID = {
    "review_weight": [0.0, 0.3, 0.5, 0.7],
    "review_temperature": [0.02, 0.05],
    "min_subject_mass": [0.1, 0.3, 0.5],
    "min_category_share": [0.5, 0.6, 0.7],
}
MAX_NON_MEDIA, MAX_OUT_OF_DOMAIN = TARGETS["non_media_given_media_label"][1], TARGETS["out_of_domain_media_share"][1]
MIN_THEME_PRECISION = TARGETS["theme_phrase_precision"][1]


def grid_settings() -> list[dict]:
    """Every combination of `GRID`; the temperature only matters with a review weight, so w = 0 takes one."""
    settings = [dict(zip(GRID, values)) for values in itertools.product(*GRID.values())]
    return [setting for setting in settings
            if setting["review_weight"] > 0 or setting["review_temperature"] == GRID["review_temperature"][0]]


def eligible(result: dict) -> bool:
    themes = [entry["phrase_precision"] for entry in result["themes"].values()]
    return (result["non_media_given_media_label"] <= MAX_NON_MEDIA
            and result["out_of_domain_media_share"] <= MAX_OUT_OF_DOMAIN
            and all(value is None or value >= MIN_THEME_PRECISION for value in themes))


def targets_met(result: dict) -> int:
    """How many of the labeller's targets a result meets, checked as topic_validity.py checks the test split."""
    return sum(check["met"] for check in against_targets({"labeller (with other)": result}))


def select(rows: list[dict]) -> dict | None:
    candidates = [row for row in rows if eligible(row["validation"])]
    if not candidates:
        return None
    return max(candidates, key=lambda row: (row["validation"]["targets_met"],
                                            row["validation"]["accuracy_vs_expected_label"],
                                            row["validation"]["media_precision"]))


def precision_agreement(topic_model, train, options: TopicLabelArguments, texts, nmf_texts) -> dict:
    """The default labelling with every embedding (anchors, typical reviews, reviews) in float32 and in bf16: the
    share of the reviews given the same label, and the seconds each precision took to decide them."""
    labels, seconds = {}, {}
    for precision in ("fp32", "bf16"):
        map_topics(topic_model, train, dataclasses.replace(options, embedding_precision=precision))
        started = time.perf_counter()
        labels[precision] = topic_model.decide(texts, nmf_texts).categories
        seconds[precision] = round(time.perf_counter() - started, 1)
    same = sum(fp32 == bf16 for fp32, bf16 in zip(labels["fp32"], labels["bf16"]))
    return {"reviews": len(texts), "same_decisions": round(same / len(texts), 4), "seconds": seconds,
            "auto_here": resolved_precision("auto", embedding_device())}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max_validation_reviews", type=int, default=None,
                        help="Only the first N validation reviews (smoke tests)")
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    started = time.perf_counter()
    options = TopicLabelArguments(mention_filter=False)
    input_files = [str(path) for path in amazon_files()]
    truth, _ = product_categories()
    _, splits, topic_model, _ = fit_topics(input_files, options, seed=SPLIT_SEED)
    validation = splits["validation"]
    if arguments.max_validation_reviews:
        validation = validation.select(range(min(arguments.max_validation_reviews, len(validation))))
    texts, nmf_texts = validation[TEXT_COLUMN], validation[NMF_TEXT_COLUMN]
    embedding_started = time.perf_counter()
    clothing = clothing_texts("validation")[:len(texts)]  # out of domain
    vectors, clothing_vectors = topic_model.embed_reviews(texts), topic_model.embed_reviews(clothing)
    embedding_seconds = time.perf_counter() - embedding_started
    logger.info("Embedded %d + %d validation reviews in %.0f s", len(texts), len(clothing), embedding_seconds)
    rows = []
    for setting in grid_settings():
        topic_model.decision = setting
        decisions = topic_model.decide(texts, nmf_texts, review_vectors=vectors)
        result = score(texts, [category or OTHER_LABEL for category in decisions.categories], truth)
        clothing_decisions = topic_model.decide(clothing, review_vectors=clothing_vectors)
        result["out_of_domain_media_share"] = media_share(clothing_decisions.categories)
        result["targets_met"] = targets_met(result)
        rows.append({"decision": setting, "validation": result})
        logger.info("%s: accuracy %.3f, media precision %.3f, non-media -> media %.3f, clothing -> media %.3f, "
                    "targets met %d", setting, result["accuracy_vs_expected_label"], result["media_precision"],
                    result["non_media_given_media_label"], result["out_of_domain_media_share"], result["targets_met"])
    selected = select(rows)
    precision = precision_agreement(topic_model, topic_fit_sample(splits["train"], options.max_topic_fit_reviews,
                                                                  SPLIT_SEED), options, texts, nmf_texts)
    logger.info("float32 and bf16 embeddings: %s", precision)
    payload = {
        "command": command_line("topic_labeller_selection", sys.argv[1:]),
        "split": "validation",
        "validation_reviews": len(texts), "out_of_domain_reviews": len(clothing),
        "rule": f"non-media -> media <= {MAX_NON_MEDIA}, clothing -> media <= {MAX_OUT_OF_DOMAIN} and theme phrase "
                f"precision >= {MIN_THEME_PRECISION}; then "
                f"the most labeller targets met, the highest accuracy vs the expected label, the highest media "
                f"precision",
        "grid": GRID,
        "rows": rows,
        "selected_decision": selected["decision"] if selected else None,
        "embedding_precision": precision,
        "embedding_seconds_per_1000_reviews": round(1000 * embedding_seconds / max(len(texts) + len(clothing), 1), 1),
        "wall_seconds": round(time.perf_counter() - started),
    }
    if arguments.max_validation_reviews:
        payload["max_validation_reviews"] = arguments.max_validation_reviews
    write_json("topic_labeller_selection_quick" if arguments.max_validation_reviews else "topic_labeller_selection",
               payload)
    if selected is None:
        logger.warning("No setting meets the rule's bounds")
    elif selected["decision"] != DEFAULT_DECISION:
        logger.warning("Selected %s; data_prep.topic_model.DEFAULT_DECISION is %s: update it", selected["decision"],
                       DEFAULT_DECISION)
    else:
        logger.info("Selected %s, the defaults", selected["decision"])


if __name__ == "__main__":
    main()
