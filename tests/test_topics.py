"""Topic labels: NMF determinism, the topic -> category affinities, the mixture decision and `other`, the labeller's
refusal to read evaluation-only columns, the saved topic model, the command on real slices."""

import csv
import json
from collections import Counter

import numpy as np
import pytest
from datasets import ClassLabel, Dataset, DatasetDict, load_from_disk

from conftest import REAL_SLICE_ROWS_PER_FILE, REAL_SLICE_TOPICS, SHARED_DATA, require_shared_data, write_amazon_slices
from data_prep import topics
from data_prep.topic_model import (
    CATEGORY_NAMES,
    DEFAULT_DECISION,
    MEDIA_CATEGORIES,
    NO_CLEAR_CATEGORY,
    NO_TOPIC,
    NO_TOPIC_WORDS,
    ONLY_GENERIC_TOPICS,
    OTHER_LABEL,
    REVIEW_FILLER_WORDS,
    SUBJECT_IS_NO_CATEGORY,
    TopicModel,
    document_frequency,
)
from data_prep.text import clean_for_topics
from data_prep.topic_report import format_topic_table
from data_prep.topics import (
    DEFAULT_CATEGORY_KEYWORDS_FILE,
    TopicLabelArguments,
    build_topic_dataset,
    keyword_scores,
    label_reviews,
    map_topics_to_categories,
    read_category_keywords,
    read_topic_categories,
)
from data_prep.review_splits import topic_fit_sample

SUBJECT_WORDS = {
    "books": "book author novel chapter characters reading story pages".split(),
    "music": "album songs guitar lyrics band vocals tracks singer".split(),
    "movies": "movie film actors scenes director dvd acting episode".split(),
    "refund-and-return": "refund returned seller customer service warranty charged replacement".split(),
}


def synthetic_reviews(count: int = 240, seed: int = 0) -> list[str]:
    """NMF-clean texts, each mostly about one subject with a few words of another."""
    rng = np.random.default_rng(seed)
    subjects = list(SUBJECT_WORDS)
    texts = []
    for index in range(count):
        main = SUBJECT_WORDS[subjects[index % len(subjects)]]
        other = SUBJECT_WORDS[subjects[(index + 1) % len(subjects)]]
        texts.append(" ".join(list(rng.choice(main, 8)) + list(rng.choice(other, 1))))
    return texts


@pytest.fixture(scope="module")
def fitted() -> TopicModel:
    return TopicModel.fit(synthetic_reviews(), num_topics=4, min_df=2, max_df=0.9, seed=0)


# Fitting and assigning ---------------------------------------------------------------------------------------------


def dominant_topic(model: TopicModel, nmf_text: str) -> int:
    return int(model.topic_shares([nmf_text])[0].argmax())


def test_nmf_with_the_same_seed_gives_the_same_topics(fitted):
    again = TopicModel.fit(synthetic_reviews(), num_topics=4, min_df=2, max_df=0.9, seed=0)
    np.testing.assert_array_equal(again.components, fitted.components)
    texts = synthetic_reviews(40, seed=1)
    np.testing.assert_array_equal(fitted.topic_shares(texts), again.topic_shares(texts))


def test_each_subject_gets_its_own_topic(fitted):
    topic_of_subject = {subject: dominant_topic(fitted, " ".join(words)) for subject, words in SUBJECT_WORDS.items()}
    assert sorted(topic_of_subject.values()) == [0, 1, 2, 3]


def test_decide_gives_the_dominant_topic_and_its_share_and_no_topic_for_unknown_words(fitted):
    texts = ["album songs guitar", "zzz qqq", ""]
    decisions = mapped(fitted).decide(texts, texts)
    assert decisions.dominant_topics[1] == decisions.dominant_topics[2] == NO_TOPIC
    assert decisions.dominant_shares[1] == decisions.dominant_shares[2] == 0.0
    assert 0.5 < decisions.dominant_shares[0] <= 1.0
    empty = mapped(fitted).decide([])
    assert empty.dominant_topics.shape == empty.dominant_shares.shape == (0,) and empty.categories == []


def test_filler_words_stay_out_of_the_vocabulary():
    texts = [text + " great love price" * (index % 2) for index, text in enumerate(synthetic_reviews())]
    vocabulary = set(TopicModel.fit(texts, num_topics=4, min_df=2, max_df=0.99, seed=0).vocabulary)
    assert not vocabulary & REVIEW_FILLER_WORDS
    kept = set(TopicModel.fit(texts, num_topics=4, min_df=2, max_df=0.99, seed=0, ignore_filler_words=False).vocabulary)
    assert {"great", "love", "price"} <= kept


def test_default_keywords_are_not_filler_or_stop_words():
    keywords = read_category_keywords(DEFAULT_CATEGORY_KEYWORDS_FILE)
    assert set(keywords) == set(CATEGORY_NAMES)
    for words in keywords.values():
        assert words and not set(words) & REVIEW_FILLER_WORDS


@pytest.mark.parametrize("value, name, expected", [
    (5.0, "min_df", 5), (1.0, "min_df", 1), (0.01, "min_df", 0.01), (0.5, "max_df", 0.5), (1.0, "max_df", 1.0),
    (300.0, "max_df", 300),
])
def test_document_frequency_reads_counts_and_fractions(value, name, expected):
    result = document_frequency(value, name)
    assert result == expected and type(result) is type(expected)


@pytest.mark.parametrize("value", [0.0, -1.0, 2.5])
def test_bad_document_frequency_is_rejected(value):
    with pytest.raises(ValueError, match="min_df"):
        document_frequency(value, "min_df")


def test_too_small_vocabulary_is_a_clear_error():
    with pytest.raises(ValueError, match="too few for 10 topics|no usable vocabulary"):
        TopicModel.fit(["book read", "book read author", "song album"] * 3, num_topics=10, min_df=2, max_df=1.0)


# Save and load -----------------------------------------------------------------------------------------------------


def test_save_and_load_give_the_same_assignments_and_decisions_without_pickle(tmp_path, fitted):
    fitted = mapped(fitted)
    fitted.set_topic_categories(["books", None, "music", "movies"])
    fitted.decision = {"min_subject_mass": 0.3, "min_category_share": 0.6, "review_weight": 0.4}
    fitted.anchor_vectors = np.random.default_rng(0).random((len(fitted.anchors), 8), dtype=np.float32)
    fitted.embedding_precision = "fp32"
    fitted.save(tmp_path / "topic_model")
    assert sorted(path.name for path in (tmp_path / "topic_model").iterdir()) == [
        "topic_model.json", "topic_model.safetensors"
    ]
    loaded = TopicModel.load(tmp_path / "topic_model")
    texts = synthetic_reviews(60, seed=3)
    np.testing.assert_array_equal(loaded.topic_shares(texts), fitted.topic_shares(texts))
    assert loaded.topic_categories == ["books", None, "music", "movies"]
    assert loaded.decision == fitted.decision and loaded.embedding_precision == "fp32"
    np.testing.assert_array_equal(loaded.anchor_vectors, fitted.anchor_vectors)
    vectors = np.random.default_rng(1).random((len(texts), 8), dtype=np.float32)
    assert (loaded.decide(texts, texts, review_vectors=vectors).categories
            == fitted.decide(texts, texts, review_vectors=vectors).categories)
    assert loaded.vocabulary == fitted.vocabulary


def test_a_topic_model_saved_before_review_embeddings_decides_from_topics_alone(tmp_path, fitted):
    model = mapped(fitted, books="book author novel")
    model.save(tmp_path / "topic_model")
    config_path = tmp_path / "topic_model" / "topic_model.json"
    config = json.loads(config_path.read_text())
    config["decision"] = {"min_subject_mass": 0.3, "min_category_share": 0.6}  # the two settings of that time
    del config["sentence_encoder"]
    config_path.write_text(json.dumps(config))
    loaded = TopicModel.load(tmp_path / "topic_model")
    assert loaded.anchor_vectors is None and not loaded.uses_review_embedding
    assert loaded.decision["review_weight"] == 0.0 and loaded.decision["min_category_share"] == 0.6
    assert loaded.decide(["t"], ["book author novel"]).categories == ["books"]


def test_decision_words_clean_raw_text_themselves(fitted):
    raw = ["The ALBUM's songs & guitar!! <br/> https://example.com", "", "Nothing known here."]
    words = fitted.decision_words(raw, [OTHER_LABEL] * 3, n=5)
    assert len(words[0]) == 5 and set(words[0]) & set(SUBJECT_WORDS["music"])
    assert words[1] == [] and words[2] == []


def test_loading_an_incomplete_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="topic_model.json is missing"):
        TopicModel.load(tmp_path)


# Topic -> category -------------------------------------------------------------------------------------------------


def test_keyword_mapping_finds_the_subject_categories(fitted):
    keywords = read_category_keywords(DEFAULT_CATEGORY_KEYWORDS_FILE)
    categories = map_topics_to_categories(keyword_scores(fitted, keywords), min_keyword_share=0.2)
    assert sorted(categories) == ["books", "movies", "music", "refund-and-return"]


def test_mapping_threshold_ties_and_override():
    scores = [
        {"books": 0.5, "music": 0.1},   # clear winner
        {"books": 0.05, "music": 0.1},  # best share under the threshold: unmapped
        {"books": 0.3, "music": 0.3},   # tie: alphabetical
        {"books": 0.0, "music": 0.0},
    ]
    assert map_topics_to_categories(scores, 0.2) == ["books", None, "books", None]
    assert map_topics_to_categories(scores, 0.2, override={0: None, 3: "games"}) == [None, None, "books", "games"]


def mapped(model: TopicModel, **categories_by_text) -> TopicModel:
    """A copy of `model` whose topics (found by a text of their words) map to categories; the rest are generic."""
    copy = TopicModel(model.vocabulary, model.idf, model.components, model.nmf_options)
    categories = [None] * copy.num_topics
    for category, text in categories_by_text.items():
        categories[dominant_topic(copy, text)] = category.replace("_", "-")
    copy.set_topic_categories(categories)
    return copy


def test_a_review_is_labelled_by_its_whole_topic_mixture_with_a_reason_when_no_category_holds_it(fitted):
    model = mapped(fitted, books="book author novel", music="album songs lyrics", movies="movie film actors")
    refund_topic = dominant_topic(model, "refund returned seller")
    model.topic_affinities[refund_topic] = 0
    model.topic_affinities[refund_topic, model.anchors.index("none: software")] = 1
    model.decision = {"min_subject_mass": 0.3, "min_category_share": 0.5}
    decisions = model.decide(["t"] * 4, [
        "album songs lyrics band",            # music alone
        "book author songs lyrics",           # books and music: the heavier subject wins when it holds half
        "refund returned seller warranty",    # a topic that is none of the categories
        "zzz",                                # no vocabulary word
    ])
    assert decisions.categories == ["music", "books", None, None]
    assert decisions.reasons == [None, None, SUBJECT_IS_NO_CATEGORY, NO_TOPIC_WORDS]
    assert decisions.supporting_topics[0] == dominant_topic(model, "album songs")
    books_share = decisions.category_mass[1, CATEGORY_NAMES.index("books")] / decisions.category_mass[1].sum()
    assert 0.5 <= books_share < 0.7
    model.decision = {**model.decision, "min_category_share": 0.7}
    strict = model.decide(["t"], ["book author songs lyrics"])
    assert strict.categories == [None] and strict.reasons == [NO_CLEAR_CATEGORY]
    np.testing.assert_allclose(decisions.category_mass[0].sum(), 1.0, atol=1e-6)


def test_generic_topics_weigh_for_nothing(fitted):
    model = mapped(fitted, books="book author novel")  # every other topic is generic
    decisions = model.decide(["t", "t"], ["album songs lyrics band", "book author novel album songs lyrics"])
    assert decisions.categories == [None, "books"]
    assert decisions.reasons[0] == ONLY_GENERIC_TOPICS


def test_a_theme_needs_its_own_words(fitted):
    model = mapped(fitted, refund_and_return="refund returned seller")
    nmf_text = "refund returned seller warranty customer"
    with_words, without_words = model.decide(["I returned it for a refund.", "Seller was slow; warranty was fine."],
                                             [nmf_text, nmf_text]).categories
    assert with_words == "refund-and-return" and without_words is None


def test_a_review_no_category_holds_gets_the_theme_whose_words_it_uses(fitted):
    model = mapped(fitted, books="book author novel")  # no topic maps to a theme
    texts = ["The seller took a week, but I got my money back.", "Great tax return software, filed in an hour.",
             "The blu-ray picture quality is grainy.", "The blender makes smoothies in seconds."]
    nmf_texts = ["seller customer service"] * len(texts)
    decisions = model.decide(texts, nmf_texts)
    assert decisions.categories == ["refund-and-return", None, "video-quality", None]


def test_a_product_category_comes_before_a_theme(fitted):
    model = mapped(fitted, books="book author novel")
    text = "I returned the book for a refund: the author's novel had pages missing."
    assert model.decide([text]).categories == ["books"]


def with_anchor_vectors(model: TopicModel, **decision) -> TopicModel:
    """`model` with one-hot anchor vectors (anchor i is unit vector i), so a review vector picks its anchor."""
    model.anchor_vectors = np.eye(len(model.anchors), dtype=np.float32)
    model.decision = decision
    return model


def review_vector(model: TopicModel, anchor: str) -> np.ndarray:
    return np.eye(len(model.anchors), dtype=np.float32)[model.anchors.index(anchor)]


def test_the_review_embedding_decides_where_the_topic_mixture_does_not(fitted):
    model = with_anchor_vectors(mapped(fitted, books="book author novel"), review_weight=0.5, review_temperature=0.05,
                                min_subject_mass=0.3)  # half the evidence from an embedding near generic
    nmf_texts = ["album songs lyrics band",   # generic topics only: the review's own embedding says music
                 "book author novel",         # books by its topics; an embedding near generic does not outvote it
                 "album songs lyrics band"]   # generic topics and an embedding near software: no category
    vectors = np.stack([review_vector(model, "music"), review_vector(model, "none: generic"),
                        review_vector(model, "none: software")])
    decisions = model.decide(["t"] * 3, nmf_texts, review_vectors=vectors)
    assert decisions.categories == ["music", "books", None]
    assert decisions.reasons[2] == SUBJECT_IS_NO_CATEGORY
    assert decisions.supporting_topics[0] == NO_TOPIC  # no topic gave music its weight: no topic words behind it
    model.decision = {**model.decision, "review_weight": 0.0}  # topics alone: the first review has no subject
    assert model.decide(["t"] * 3, nmf_texts, review_vectors=vectors).categories == [None, "books", None]


def test_without_a_topic_word_the_embedding_alone_gives_no_category(fitted):
    model = with_anchor_vectors(mapped(fitted, books="book author novel"), review_weight=1.0, review_temperature=0.05)
    decisions = model.decide(["这是一本好书", "😀😀 love it 👗"], ["", "love"],
                             review_vectors=np.stack([review_vector(model, "books")] * 2))
    assert decisions.categories == [None, None] and decisions.reasons == [NO_TOPIC_WORDS, NO_TOPIC_WORDS]


def test_a_theme_from_the_embedding_still_needs_its_own_words(fitted):
    model = with_anchor_vectors(mapped(fitted, books="book author novel"), review_weight=1.0, review_temperature=0.05)
    texts = ["The seller shipped it late; the case was cracked.", "Sent it back and got a refund within days."]
    decisions = model.decide(texts, ["seller customer service"] * 2,
                             review_vectors=np.stack([review_vector(model, "refund-and-return")] * 2))
    assert decisions.categories == [None, "refund-and-return"]


def test_bad_decision_settings_and_review_vectors_are_clear_errors(fitted):
    model = with_anchor_vectors(mapped(fitted, books="book author novel"), review_weight=0.5)
    with pytest.raises(ValueError, match="Unknown decision setting.*review_wieght"):
        model.decision = {"review_wieght": 0.5}
    with pytest.raises(ValueError, match="review_temperature must be positive"):
        model.decision = {"review_temperature": 0.0}
    with pytest.raises(ValueError, match="min_category_share must be in"):
        model.decision = {"min_category_share": 1.2}
    with pytest.raises(ValueError, match="review_vectors of shape"):
        model.decide(["t"], ["book author"], review_vectors=np.zeros((2, len(model.anchors))))
    with pytest.raises(ValueError, match="review_weight must be in"):
        topics.map_topics(model, Dataset.from_dict({"text": ["a"], "nmf_text": ["book"]}),
                          TopicLabelArguments(topic_mapping="keywords", review_weight=1.5))


def test_the_default_decision_is_the_one_selected_on_validation():
    from benchmarks.common import RESULTS_DIR

    selection = json.loads((RESULTS_DIR / "topic_labeller_selection.json").read_text())
    assert selection["split"] == "validation"
    assert DEFAULT_DECISION == selection["selected_decision"]
    assert TopicLabelArguments().review_weight == DEFAULT_DECISION["review_weight"]
    chosen = next(row["validation"] for row in selection["rows"] if row["decision"] == DEFAULT_DECISION)
    assert chosen["out_of_domain_media_share"] <= 0.05 and chosen["non_media_given_media_label"] <= 0.05


def test_the_selection_rule_refuses_a_setting_that_labels_clothing_reviews_as_media():
    from benchmarks.topic_labeller_selection import eligible, select

    themes = {"refund-and-return": {"phrase_precision": 0.95}, "video-quality": {"phrase_precision": None}}
    within = {"non_media_given_media_label": 0.02, "out_of_domain_media_share": 0.05, "themes": themes,
              "targets_met": 5, "accuracy_vs_expected_label": 0.80, "media_precision": 0.95}
    media_on_clothing = {**within, "out_of_domain_media_share": 0.06, "targets_met": 9, "accuracy_vs_expected_label": 0.9}
    assert eligible(within) and not eligible(media_on_clothing)
    rows = [{"decision": {"review_weight": 0.5}, "validation": media_on_clothing},
            {"decision": {"review_weight": 0.7}, "validation": within}]
    assert select(rows)["decision"] == {"review_weight": 0.7}
    assert select(rows[:1]) is None


def test_label_reviews_gives_other_or_drops_and_counts_every_reason(fitted):
    model = mapped(fitted, music="album songs lyrics")
    reviews = Dataset.from_dict({"text": ["a", "b", "c"], "nmf_text": ["album songs lyrics", "book author novel", "zzz"]})
    labelled, no_category, topic_counts = label_reviews(reviews, model)
    assert labelled.features["label"] == ClassLabel(names=[*CATEGORY_NAMES, OTHER_LABEL])
    assert [labelled.features["label"].names[i] for i in labelled["label"]] == ["music", OTHER_LABEL, OTHER_LABEL]
    assert no_category == {ONLY_GENERIC_TOPICS: 1, NO_TOPIC_WORDS: 1} and sum(topic_counts.values()) == 3
    six_class, dropped, _ = label_reviews(reviews, model, other_class=False)
    assert six_class.features["label"] == ClassLabel(names=CATEGORY_NAMES)
    assert six_class["nmf_text"] == ["album songs lyrics"] and dropped == no_category


def test_topics_are_fitted_on_a_seeded_sample_of_at_most_max_topic_fit_reviews():
    train = Dataset.from_dict({"nmf_text": [f"review {index}" for index in range(50)]})
    assert topic_fit_sample(train, None, seed=0) is train and topic_fit_sample(train, 50, seed=0) is train
    sample = topic_fit_sample(train, 20, seed=0)
    assert len(sample) == 20 and len(set(sample["nmf_text"])) == 20
    assert sample["nmf_text"] == topic_fit_sample(train, 20, seed=0)["nmf_text"] != train["nmf_text"][:20]
    with pytest.raises(ValueError, match="--max_topic_fit_reviews must be at least 10"):
        topic_fit_sample(train, 5, seed=0)


def test_without_other_class_is_what_no_other_class_labels_and_survives_save_and_load(fitted, tmp_path):
    model = mapped(fitted, music="album songs lyrics")
    reviews = Dataset.from_dict({"text": ["a", "b", "c", "d"],
                                 "nmf_text": ["album songs lyrics", "book author novel", "zzz", "songs band"]})
    labelled, no_category, _ = label_reviews(reviews, model)
    six_class, _, _ = label_reviews(reviews, model, other_class=False)
    result = topics.TopicDataset(
        splits=DatasetDict({"train": labelled}), topic_model=model,
        report={"settings": {"other_class": True}, "no_category": {"train": dict(no_category)},
                "topics": [{"topic": 0, "category": "music", "size": 2, "top_words": ["album"],
                            "top_word_weights": [1.0]}]})
    topics.save_topic_dataset(result, tmp_path / "with_other")
    derived = topics.without_other_class(topics.load_topic_dataset(tmp_path / "with_other"))
    with_other_names = labelled.features["label"].names
    kept = [(text, with_other_names[label]) for text, label in zip(labelled["text"], labelled["label"])
            if with_other_names[label] != OTHER_LABEL]
    derived_names = derived.splits["train"].features["label"].names
    assert derived_names == CATEGORY_NAMES
    assert [(text, derived_names[label]) for text, label in zip(derived.splits["train"]["text"],
                                                                 derived.splits["train"]["label"])] == kept
    assert kept == [("a", "music"), ("d", "music")]
    assert derived.splits["train"].to_dict() == six_class.to_dict()
    assert derived.report["settings"]["other_class"] is False
    assert derived.report["dropped_while_labelling"] == {"train": dict(no_category)}
    assert derived.report["category_sizes"]["train"]["music"] == 2


@pytest.mark.parametrize("column", ["category", "source"])
def test_the_labeller_refuses_a_dataset_with_an_evaluation_only_column(fitted, column):
    reviews = Dataset.from_dict({"text": ["a"], "nmf_text": ["album songs"], column: ["Digital_Music"]})
    with pytest.raises(ValueError, match=f"evaluation-only column.*{column}"):
        label_reviews(reviews, mapped(fitted, music="album songs lyrics"))
    with pytest.raises(ValueError, match="evaluation-only column"):
        topics.map_topics(fitted, reviews, TopicLabelArguments(topic_mapping="keywords"))


def test_decision_words_are_those_of_the_topic_behind_the_label(fitted):
    model = mapped(fitted, books="book author novel", refund_and_return="refund returned seller")
    review = "The book arrived damaged, I returned it for a refund from the seller."
    refund_words, book_words, other_words = model.decision_words([review] * 3,
                                                                 ["refund-and-return", "books", OTHER_LABEL])
    assert "refund" in refund_words and "book" in book_words
    assert other_words == model.topic_top_words(8)[dominant_topic(model, clean_for_topics(review))]
    assert model.decision_words(["这是一本好书"], [OTHER_LABEL]) == [[]]


def test_override_and_keyword_files_are_validated(tmp_path):
    path = tmp_path / "override.json"
    path.write_text('{"2": "music", "4": null}')
    assert read_topic_categories(path, num_topics=5) == {2: "music", 4: None}
    for content, message in [('{"5": "music"}', "does not exist"), ('{"1": "sports"}', "not one of"),
                             ('{"x": "music"}', "not a topic number"), ("[1, 2]", "expected an object"),
                             ("{oops", "not valid JSON")]:
        path.write_text(content)
        with pytest.raises(ValueError, match=message):
            read_topic_categories(path, num_topics=5)
    path.write_text('{"sports": ["ball"]}')
    with pytest.raises(ValueError, match="unknown categor"):
        read_category_keywords(path)
    with pytest.raises(FileNotFoundError, match="category keywords file not found"):
        read_category_keywords(tmp_path / "missing.json")


# The command on real data ------------------------------------------------------------------------------------------


def write_shared_slice(folder, rows_per_file: int = 1500) -> list:
    """The first rows of each shared Amazon file, with their own (differing) columns (or a skip / CI failure)."""
    require_shared_data(SHARED_DATA / "amazon_reviews.csv.gz")
    return write_amazon_slices(folder, rows_per_file)


@pytest.mark.slow
def test_command_writes_dataset_report_chart_and_topic_model(real_topic_slice):
    _, output_dir, fitted_on = real_topic_slice
    splits = load_from_disk(str(output_dir))
    assert set(splits) == {"train", "validation", "test"}
    names = splits["train"].features["label"].names
    assert names == [*CATEGORY_NAMES, OTHER_LABEL]
    assert {"text", "nmf_text", "rating", "label", "topic", "topic_weight"} <= set(splits["train"].column_names)
    assert not {"category", "source"} & set(splits["train"].column_names)

    report = json.loads((output_dir / "topics.json").read_text())
    assert len(report["topics"]) == REAL_SLICE_TOPICS
    assert {"topic", "category", "size", "train_size", "top_words", "affinities", "embedding_similarities",
            "keyword_scores", "typical_reviews"} <= set(report["topics"][0])
    assert report["reviews_read"] == 3 * REAL_SLICE_ROWS_PER_FILE
    assert sum(len(split) for split in splits.values()) == report["reviews_after_cleaning"]  # nothing dropped
    others = sum(sizes[OTHER_LABEL] for sizes in report["category_sizes"].values())
    assert others == sum(sum(counts.values()) for counts in report["no_category"].values()) > 0
    assert (output_dir / "topics.png").stat().st_size > 10_000
    assert "why (affinities)" in format_topic_table(report)

    # the topic model was fit on the whole train split only, and labels new text as in the saved splits
    assert fitted_on == [len(splits["train"])]
    loaded = TopicModel.load(output_dir / "topic_model")
    sample = splits["validation"].select(range(40))
    decisions = loaded.decide(sample["text"], sample["nmf_text"])
    assert decisions.dominant_topics.tolist() == sample["topic"]
    # NMF's transform stops on a tolerance over its whole batch, so weights depend on the batch in the 5th digit
    np.testing.assert_allclose(decisions.dominant_shares, sample["topic_weight"], atol=1e-4)
    assert [category or OTHER_LABEL for category in decisions.categories] == [names[label] for label in sample["label"]]


@pytest.mark.slow
def test_empty_and_tiny_categories_are_reported_not_fatal(tmp_path, caplog):
    reviews = synthetic_reviews(400)
    path = tmp_path / "reviews.csv"
    with open(path, "w", newline="") as handle:
        csv.writer(handle).writerows([5, "", text] for text in reviews)
    options = TopicLabelArguments(num_topics=4, min_df=2, max_df=0.9, mention_filter=False, min_category_size=500,
                                  topic_mapping="keywords")
    result = build_topic_dataset([path], options, seed=0)
    warnings = "\n".join(result.report["warnings"])
    assert "'games' is empty" in warnings and "'video-quality' is empty" in warnings
    assert "'music' has only" in warnings
    assert result.report["category_sizes"]["train"]["games"] == 0


def shuffle_column(path, column: str, seed: int = 0) -> None:
    """Permute one column of a headed CSV in place (the other columns keep their rows)."""
    import pandas as pd

    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame[column] = frame[column].sample(frac=1, random_state=seed).to_numpy()
    frame.to_csv(path, index=False, compression="gzip")


@pytest.mark.slow
def test_labels_are_the_same_when_category_and_source_are_shuffled(tmp_path):
    options = TopicLabelArguments(num_topics=8, mention_filter=False)
    (tmp_path / "original").mkdir()
    (tmp_path / "shuffled").mkdir()
    original = build_topic_dataset(write_shared_slice(tmp_path / "original", rows_per_file=120), options, seed=0)
    shuffled_inputs = write_shared_slice(tmp_path / "shuffled", rows_per_file=120)
    for path in shuffled_inputs:
        for column in ("category", "source"):
            shuffle_column(path, column)
    shuffled = build_topic_dataset(shuffled_inputs, options, seed=0)
    for split in ("train", "validation", "test"):
        assert shuffled.splits[split]["label"] == original.splits[split]["label"]
        assert shuffled.splits[split]["text"] == original.splits[split]["text"]


def slice_categories(paths) -> dict[str, str]:
    """Review text -> product category of a slice (for scoring only, as benchmarks/topic_validity.py does)."""
    import pandas as pd

    from data_prep.text import join_title_and_body

    truth = {}
    for path in paths:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        if "category" in frame:
            for title, review, category in zip(frame["title"], frame["review"], frame["category"]):
                truth[join_title_and_body(title or None, review or None)] = category
    return truth


def slice_scores(result, truth: dict[str, str]) -> dict:
    """The benchmark's figures on a labelled slice: media precision, non-media given a media label, and the share of
    each media category's reviews that get their own label. Only the categories the benchmark scores count (the
    slices also hold dvd, books, electronics... reviews, which it leaves out)."""
    from benchmarks.topic_validity import EXPECTED_LABEL, NON_MEDIA

    names = result.splits["train"].features["label"].names
    per_category: dict[str, Counter] = {}
    for split in result.splits.values():
        for text, label in zip(split["text"], split["label"]):
            if truth.get(text) in EXPECTED_LABEL:
                per_category.setdefault(truth[text], Counter())[names[label]] += 1
    media_given = sum(n for counts in per_category.values() for label, n in counts.items() if label in MEDIA_CATEGORIES)
    media_right = sum(per_category[c][expected] for c, expected in EXPECTED_LABEL.items() if expected)
    non_media = sum(sum(per_category[c].values()) for c in NON_MEDIA)
    non_media_media = sum(n for c in NON_MEDIA for label, n in per_category[c].items() if label in MEDIA_CATEGORIES)
    return {"media_given": media_given, "media_precision": media_right / media_given, "non_media": non_media,
            "non_media_given_media": non_media_media / non_media,
            "own": {c: per_category[c][expected] / sum(per_category[c].values())
                    for c, expected in EXPECTED_LABEL.items() if expected}}


@pytest.mark.slow
def test_on_a_real_slice_media_labels_match_the_product_category_and_non_media_reviews_become_other(
        real_topic_slice):
    inputs, output_dir, _ = real_topic_slice
    truth = slice_categories(inputs)
    labelled = slice_scores(topics.load_topic_dataset(output_dir), truth)  # the command's defaults
    topics_alone = slice_scores(build_topic_dataset(
        inputs, TopicLabelArguments(num_topics=REAL_SLICE_TOPICS, mention_filter=False, review_weight=0.0), seed=0),
        truth)
    print(labelled, topics_alone)
    # 4,500 reviews give coarser topics than the full files (this slice measured precision 0.925, non-media 0.025,
    # movies_tv -> movies 0.749; with topics alone 0.908, 0.016, 0.432): looser bounds than the benchmark's targets,
    # tight enough to catch a labeller that gives guitar strings or software a media label, or one that loses the
    # movie reviews that never use a movie topic's words
    assert labelled["media_given"] > 1000 and labelled["media_precision"] >= 0.90
    assert labelled["non_media"] > 1000 and labelled["non_media_given_media"] <= 0.05
    assert labelled["own"]["movies_tv"] >= 0.70 and topics_alone["own"]["movies_tv"] < 0.55
    assert all(labelled["own"][category] >= 0.85 for category in ("Books", "Kindle_Store", "Digital_Music"))


@pytest.mark.slow
def test_a_label_sample_gets_the_labels_a_full_labelling_gives_them(tmp_path):
    """--label_sample embeds only the sampled reviews; the topic model is fit on the whole train split either way, so
    each sampled review gets the label the full labelling gives it."""
    inputs = write_shared_slice(tmp_path, rows_per_file=150)
    options = TopicLabelArguments(mention_filter=False, num_topics=8)
    full = build_topic_dataset(inputs, options, seed=0)
    sampled = build_topic_dataset(inputs, TopicLabelArguments(mention_filter=False, num_topics=8, label_sample=120),
                                  seed=0)
    sizes = {name: len(split) for name, split in sampled.splits.items()}
    assert sum(sizes.values()) == sampled.report["reviews_labelled"] == 120
    assert sizes["train"] == pytest.approx(0.8 * 120, abs=1)
    assert sampled.report["reviews_after_cleaning"] == full.report["reviews_after_cleaning"] > 120
    for name in sizes:
        full_labels = dict(zip(full.splits[name]["text"], full.splits[name]["label"]))
        assert [full_labels[text] for text in sampled.splits[name]["text"]] == sampled.splits[name]["label"]
