"""What a topic labelling run reports: every topic with its words, sizes, category and why, the label sizes per split,
the reviews that got no category by reason; as JSON (`topic_report`), a chart (`plot_topics`) and a text table."""

import math
import os
from dataclasses import asdict

import numpy as np

from .topic_model import THEME_WORDS


def topic_report(topic_model, evidence, topic_counts, sizes, reviews, no_category, options, seed) -> dict:
    """Every topic (top words, sizes, category and why: its affinities, embedding similarities, keyword shares and
    typical reviews), the label sizes per split (`sizes`: split -> label name -> reviews), and every review that got
    no category, by reason."""
    top_words = topic_model.topic_top_words(10)
    order = np.argsort(-topic_model.components, axis=1, kind="stable")[:, :10]
    names = list(sizes["train"])  # every label name, `other` included
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
        "source": reviews.source,
        "hub_dataset": reviews.hub_dataset,
        "reviews_read": reviews.rows_read,
        "reviews_after_cleaning": len(reviews.dataset),
        "reviews_labelled": sum(sum(counts.values()) for counts in sizes.values()),
        "dropped_while_reading": reviews.dropped,
        "no_category": no_category_counts,
        "dropped_while_labelling": {},
        "category_sizes": sizes,
        "warnings": warnings,
        "topics": topics,
    }


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
