"""Topic labels: NMF determinism, the topic -> category mapping and thresholds, the saved topic model, the command."""

import csv
import gzip
import json

import numpy as np
import pytest
from datasets import ClassLabel, Dataset, load_from_disk

from conftest import AMAZON_FILES, SHARED_DATA, require_shared_data
from data_prep import topics
from data_prep.topics import (
    CATEGORY_NAMES,
    DEFAULT_CATEGORY_KEYWORDS_FILE,
    NO_TOPIC,
    REVIEW_FILLER_WORDS,
    TopicLabelArguments,
    TopicModel,
    build_topic_dataset,
    document_frequency,
    drop_reason,
    keyword_scores,
    label_reviews,
    map_topics_to_categories,
    read_category_keywords,
    read_topic_categories,
)

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


def test_nmf_with_the_same_seed_gives_the_same_topics(fitted):
    again = TopicModel.fit(synthetic_reviews(), num_topics=4, min_df=2, max_df=0.9, seed=0)
    np.testing.assert_array_equal(again.components, fitted.components)
    texts = synthetic_reviews(40, seed=1)
    for first, second in zip(fitted.assign(texts, cleaned=True), again.assign(texts, cleaned=True)):
        np.testing.assert_array_equal(first, second)


def test_each_subject_gets_its_own_topic(fitted):
    topic_of_subject = {subject: fitted.assign([" ".join(words)], cleaned=True)[0][0]
                        for subject, words in SUBJECT_WORDS.items()}
    assert sorted(topic_of_subject.values()) == [0, 1, 2, 3]


def test_assign_returns_the_dominant_topic_share_and_no_topic_for_unknown_words(fitted):
    topic_ids, weights = fitted.assign(["album songs guitar", "zzz qqq", ""], cleaned=True)
    assert topic_ids[1] == topic_ids[2] == NO_TOPIC and weights[1] == weights[2] == 0.0
    assert 0.5 < weights[0] <= 1.0
    empty_ids, empty_weights = fitted.assign([])
    assert empty_ids.shape == empty_weights.shape == (0,)


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


def test_save_and_load_give_the_same_assignments_without_pickle(tmp_path, fitted):
    fitted.topic_categories = ["books", None, "music", "movies"]
    fitted.save(tmp_path / "topic_model")
    assert sorted(path.name for path in (tmp_path / "topic_model").iterdir()) == [
        "topic_model.json", "topic_model.safetensors"
    ]
    loaded = TopicModel.load(tmp_path / "topic_model")
    texts = synthetic_reviews(60, seed=3)
    for before, after in zip(fitted.assign(texts, cleaned=True), loaded.assign(texts, cleaned=True)):
        np.testing.assert_array_equal(before, after)
    assert loaded.topic_categories == ["books", None, "music", "movies"]
    assert loaded.vocabulary == fitted.vocabulary


def test_top_words_clean_raw_text_themselves(fitted):
    raw = ["The ALBUM's songs & guitar!! <br/> https://example.com", "", "Nothing known here."]
    words = fitted.top_words(raw, n=5)
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


def test_drop_reasons():
    assert drop_reason(NO_TOPIC, 0.0, None, 0.2) == "no topic vocabulary words"
    assert drop_reason(3, 0.9, None, 0.2) == "topic maps to no category"
    assert drop_reason(3, 0.19, "music", 0.2) == "topic weight below 0.2"
    assert drop_reason(3, 0.2, "music", 0.2) is None


def test_label_reviews_drops_and_counts_per_reason(fitted):
    fitted.topic_categories = [None] * fitted.num_topics
    music_topic = fitted.assign(["album songs guitar"], cleaned=True)[0][0]
    fitted.topic_categories[music_topic] = "music"
    reviews = Dataset.from_dict({"text": ["t"] * 4, "nmf_text": [
        "album songs guitar lyrics",               # music, clear
        "album book novel film refund",            # mixed: low weight or another (unmapped) topic
        "refund returned seller",                  # an unmapped topic
        "zzz",                                     # no vocabulary word
    ]})
    kept, dropped, topic_counts = label_reviews(reviews, fitted, min_topic_weight=0.6)
    assert kept["nmf_text"] == ["album songs guitar lyrics"]
    assert kept.features["label"] == ClassLabel(names=CATEGORY_NAMES)
    assert kept["label"] == [CATEGORY_NAMES.index("music")] and kept["topic"] == [music_topic]
    assert dropped["no topic vocabulary words"] == 1 and sum(dropped.values()) == 3
    assert sum(topic_counts.values()) == 4


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
    """The first rows of each shared Amazon file, with their own (differing) columns."""
    require_shared_data(SHARED_DATA / "amazon_reviews.csv.gz")
    paths = []
    for source in AMAZON_FILES:
        target = folder / source.name
        with gzip.open(source, "rt", encoding="utf-8", newline="") as reader, \
                gzip.open(target, "wt", encoding="utf-8", newline="") as writer:
            rows = csv.reader(reader)
            csv.writer(writer).writerows(row for row, _ in zip(rows, range(rows_per_file + 1)))
        paths.append(target)
    return paths


@pytest.mark.slow
def test_command_writes_dataset_report_chart_and_topic_model(tmp_path, monkeypatch):
    inputs = write_shared_slice(tmp_path)
    output_dir = tmp_path / "topics"
    fitted_on = []
    original_fit = TopicModel.fit.__func__
    monkeypatch.setattr(TopicModel, "fit", classmethod(
        lambda cls, texts, **kwargs: fitted_on.append(len(texts)) or original_fit(cls, texts, **kwargs)
    ))
    topics.main(["--input_file", *map(str, inputs), "--no_mention_filter", "--output_dir", str(output_dir),
                          "--num_topics", "12", "--seed", "1"])

    splits = load_from_disk(str(output_dir))
    assert set(splits) == {"train", "validation", "test"}
    assert splits["train"].features["label"].names == CATEGORY_NAMES
    assert {"text", "nmf_text", "rating", "label", "topic", "topic_weight"} <= set(splits["train"].column_names)
    assert min(splits["train"]["topic_weight"]) >= 0.2

    report = json.loads((output_dir / "topics.json").read_text())
    assert len(report["topics"]) == 12
    assert {"topic", "category", "size", "train_size", "top_words"} <= set(report["topics"][0])
    assert report["reviews_read"] == 3 * 1500
    kept = sum(len(split) for split in splits.values())
    dropped = sum(sum(counts.values()) for counts in report["dropped_while_labelling"].values())
    assert kept + dropped == report["reviews_after_cleaning"]
    assert (output_dir / "topics.png").stat().st_size > 10_000

    # the topic model was fit on the whole train split only, and labels new text as in the saved splits
    assert fitted_on == [len(splits["train"]) + sum(report["dropped_while_labelling"]["train"].values())]
    loaded = TopicModel.load(output_dir / "topic_model")
    sample = splits["validation"].select(range(20))
    topic_ids, weights = loaded.assign(sample["nmf_text"], cleaned=True)
    assert topic_ids.tolist() == sample["topic"]
    # NMF's transform stops on a tolerance over its whole batch, so weights depend on the batch in the 5th digit
    np.testing.assert_allclose(weights, sample["topic_weight"], atol=1e-4)
    assert loaded.categories_of(topic_ids) == [CATEGORY_NAMES[label] for label in sample["label"]]


@pytest.mark.slow
def test_empty_and_tiny_categories_are_reported_not_fatal(tmp_path, caplog):
    reviews = synthetic_reviews(400)
    path = tmp_path / "reviews.csv"
    with open(path, "w", newline="") as handle:
        csv.writer(handle).writerows([5, "", text] for text in reviews)
    options = TopicLabelArguments(num_topics=4, min_df=2, max_df=0.9, mention_filter=False, min_category_size=500)
    result = build_topic_dataset([path], options, seed=0)
    warnings = "\n".join(result.report["warnings"])
    assert "'games' is empty" in warnings and "'video-quality' is empty" in warnings
    assert "'music' has only" in warnings
    assert result.report["category_sizes"]["train"]["games"] == 0
