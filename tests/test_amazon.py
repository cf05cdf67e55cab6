"""Amazon review reading (headerless and headed), the mention filter, the two cleanings, and clear errors."""

import gzip
import logging

import pytest
from datasets import Dataset

from conftest import AMAZON_FILES, SHARED_DATA, require_shared_data
from data_prep.amazon import (
    AMAZON_COLUMNS,
    DEFAULT_MENTION_PATTERN,
    compile_mention_pattern,
    filter_mentions,
    load_amazon_reviews,
    mentions,
    read_amazon_file,
    read_amazon_files,
)
from data_prep.text import clean_for_topics, expand_contractions, join_title_and_body


def write(path, text: str):
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="utf-8", newline="") as handle:
        handle.write(text)
    return path


# The mention filter ------------------------------------------------------------------------------------------------

MENTION = compile_mention_pattern(DEFAULT_MENTION_PATTERN)
# The same decision in syntax RE2 rejects, so filter_mentions falls back to Python's re.
PYTHON_ONLY_PATTERN = r"(?<![a-z0-9_])amazon(?![a-z0-9_])"
KEPT = ["Bought it on amazon.com last week", "Amazon's return policy saved me", "AMAZON SHIPPED FAST",
        "(amazon) was cheaper", "sold by Amazon.", "ordered from amazon, arrived late"]
DROPPED = ["An Amazonian adventure through the rainforest", "AmazonBasics cable", "amazonsmile donation",
           "no mention here"]


def reviews_dataset(texts, titles=None) -> Dataset:
    return Dataset.from_dict({"rating": ["5"] * len(texts), "title": titles or [None] * len(texts), "review": texts})


@pytest.mark.parametrize("text", KEPT)
def test_mention_filter_keeps_amazon_as_a_word_in_any_case(text):
    assert mentions(MENTION, None, text)


@pytest.mark.parametrize("text", DROPPED)
def test_mention_filter_drops_longer_words_and_no_mention(text):
    assert not mentions(MENTION, None, text)


@pytest.mark.parametrize("pattern", [DEFAULT_MENTION_PATTERN, PYTHON_ONLY_PATTERN])
def test_vectorized_and_python_filters_make_the_same_decisions(pattern):
    kept = filter_mentions(reviews_dataset(KEPT + DROPPED), pattern)
    assert list(kept["review"]) == KEPT


def test_mention_in_title_only_counts():
    assert mentions(MENTION, "Thanks Amazon", "Works as described")
    assert not mentions(MENTION, None, None)
    kept = filter_mentions(reviews_dataset(["Works as described", "Works"], titles=["Thanks Amazon", None]))
    assert list(kept["title"]) == ["Thanks Amazon"]


def test_filter_mentions_counts_and_logs(tmp_path, caplog):
    path = write(tmp_path / "reviews.csv", (
        '5,"Great","Bought it on Amazon"\n'
        '4,"Amazonian tales","A story from the jungle"\n'
        '3,"AMAZON","ok"\n'
    ))
    with caplog.at_level(logging.INFO, logger="data_prep"):
        kept = filter_mentions(read_amazon_file(path))
    assert kept["title"] == ["Great", "AMAZON"]
    assert "kept 2 of 3 reviews (dropped 1)" in caplog.text


def test_custom_mention_pattern_and_invalid_pattern(tmp_path):
    path = write(tmp_path / "reviews.csv", '5,"Kindle","love my kindle"\n4,"Echo","Alexa is fun"\n')
    assert filter_mentions(read_amazon_file(path), r"\bkindle\b")["title"] == ["Kindle"]
    with pytest.raises(ValueError, match="Invalid mention pattern"):
        filter_mentions(read_amazon_file(path), "amazon(")


# Cleaning ----------------------------------------------------------------------------------------------------------


def test_contractions_are_expanded_before_punctuation_is_stripped():
    assert expand_contractions("i didn't like it, it's amazon's fault and i won't buy") == (
        "i did not like it, it is amazon fault and i will not buy"
    )
    cleaned = clean_for_topics("I didn’t get a refund, couldn't return it and they'll never answer")
    for fragment in ("didn", "couldn", "ll"):
        assert fragment not in cleaned.split()
    assert cleaned.split() == ["did", "refund", "return", "answer"]


def test_nmf_cleaning_removes_html_urls_digits_and_stop_words():
    cleaned = clean_for_topics(
        "The <b>PICTURE</b> quality&amp;sound on https://www.amazon.com/dp/B00X and www.example.org are 10/10!"
    )
    assert cleaned == "picture quality sound"


def test_nmf_cleaning_keeps_non_ascii_letters_and_handles_empty():
    assert clean_for_topics("Très bon café") == "très bon café"
    assert clean_for_topics(None) == "" and clean_for_topics("the and of 123") == ""


def test_transformer_text_is_the_shared_light_normalization(tmp_path):
    path = write(tmp_path / "reviews.csv", '5,"Great &amp; cheap","It works.<br />Shipped by   Amazon."\n')
    reviews = load_amazon_reviews([path])
    assert reviews.dataset["text"] == [join_title_and_body("Great &amp; cheap", "It works.<br />Shipped by   Amazon.")]
    assert reviews.dataset["text"] == ["Great & cheap. It works. Shipped by Amazon."]
    assert reviews.dataset["nmf_text"] == ["great cheap works shipped amazon"]


# Reading -----------------------------------------------------------------------------------------------------------


def test_headerless_review_full_keeps_its_first_row(tmp_path):
    path = write(tmp_path / "train.csv.gz", (
        '"3","more like funchuck","Gave this to my dad for a gag gift after directing ""Nunsense."""\n'
        '"5","Inspiring","I hope a lot of people hear this cd."\n'
    ))
    dataset = read_amazon_file(path)
    assert dataset.column_names == AMAZON_COLUMNS
    assert len(dataset) == 2
    assert dataset[0] == {"rating": "3", "title": "more like funchuck",
                          "review": 'Gave this to my dad for a gag gift after directing "Nunsense."'}


def test_headed_file_with_extra_columns_and_other_order(tmp_path):
    path = write(tmp_path / "reviews.csv", "source,Review,Title,Rating\nweb,Nice book,Good,4\nweb,Meh,,\n")
    dataset = read_amazon_file(path)
    assert dataset.column_names == AMAZON_COLUMNS
    assert dataset[0] == {"rating": "4", "title": "Good", "review": "Nice book"}
    assert dataset[1] == {"rating": None, "title": None, "review": "Meh"}


def test_text_like_na_is_kept_as_text(tmp_path):
    path = write(tmp_path / "reviews.csv", '5,"NA","None of the tracks skip"\n')
    assert read_amazon_file(path)[0]["title"] == "NA"


def test_empty_rating_is_unknown_and_ratings_become_integers(tmp_path):
    path = write(tmp_path / "reviews.csv", ',"From amazon","No stars given"\n4.0,"amazon","Four"\n')
    reviews = load_amazon_reviews([path])
    assert reviews.dataset["rating"] == [None, 4]


def test_reviews_without_text_are_dropped_and_counted(tmp_path, caplog):
    path = write(tmp_path / "reviews.csv", '5,"Amazon rocks",""\n4,"",""\n3," ","  "\n2,"","amazon was slow"\n')
    with caplog.at_level(logging.INFO, logger="data_prep"):
        reviews = load_amazon_reviews([path])
    assert len(reviews.dataset) == 2
    assert reviews.dropped["no title or review text"] == 2
    assert "Dropped 2 reviews: no title or review text" in caplog.text


def test_reviews_with_only_stop_words_are_dropped_and_counted(tmp_path):
    path = write(tmp_path / "reviews.csv", '5,"","It is what it is"\n5,"","Nice lamp"\n')
    reviews = load_amazon_reviews([path], mention_filter=False)
    assert reviews.dataset["nmf_text"] == ["nice lamp"]
    assert reviews.dropped["no content words left after NMF cleaning"] == 1


def test_files_with_different_columns_are_aligned_and_concatenated(tmp_path):
    headerless = write(tmp_path / "full.csv", '1,"Bad","Returned it to Amazon"\n')
    headed = write(tmp_path / "headed.csv", "rating,title,review,polarity\n5,Great,Amazon delivered,2\n")
    dataset = read_amazon_files([headerless, headed])
    assert dataset.column_names == AMAZON_COLUMNS
    assert dataset["title"] == ["Bad", "Great"]


def test_shared_amazon_files_read_with_their_documented_sizes():
    require_shared_data(SHARED_DATA / "amazon_reviews.csv.gz")
    dataset = read_amazon_files(AMAZON_FILES)
    assert dataset.column_names == AMAZON_COLUMNS
    assert len(dataset) == 92_715  # SOURCES.md: 44,909 + 18,560 + 29,246
    assert dataset["rating"].count(None) == 5_805


# Bad input ---------------------------------------------------------------------------------------------------------


def test_non_numeric_rating_names_file_line_and_value(tmp_path):
    path = write(tmp_path / "reviews.csv", "rating,title,review\n5,ok,fine\nfive,bad,row\n")
    with pytest.raises(ValueError, match=r"reviews\.csv: rating 'five' on line 3 is not a number"):
        read_amazon_file(path, strict=True)


def test_out_of_range_rating_is_an_error(tmp_path):
    path = write(tmp_path / "reviews.csv", '7,"x","y"\n')
    with pytest.raises(ValueError, match="rating '7' on line 1 is outside 1-5"):
        read_amazon_file(path, strict=True)


def test_malformed_ratings_are_dropped_counted_and_logged_unless_strict(tmp_path, caplog):
    path = write(tmp_path / "reviews.csv", '5,"Great","Arrived from amazon fast"\nfive,"Bad","amazon row"\n'
                 '9,"Odd","amazon again"\n,"Unknown","amazon rating left empty"\n')
    with caplog.at_level(logging.INFO, logger="data_prep"):
        reviews = load_amazon_reviews([path])
    assert reviews.dataset["rating"] == [5, None]
    assert reviews.dropped["rating not 1-5 and not empty"] == 2
    assert "rating 'five' on line 2 is not a number" in caplog.text and "2 row(s) affected" in caplog.text
    assert "Dropped 2 reviews: rating not 1-5 and not empty" in caplog.text
    with pytest.raises(ValueError, match="rating 'five' on line 2"):
        load_amazon_reviews([path], strict=True)


def test_missing_columns_are_named(tmp_path):
    path = write(tmp_path / "reviews.csv", "stars,headline,body\n5,a,b\n")
    with pytest.raises(ValueError, match=r"the columns are \['stars', 'headline', 'body'\]"):
        read_amazon_file(path)


@pytest.mark.parametrize("delimiter", ["\t", ";"])
def test_wrong_delimiter_is_reported(tmp_path, delimiter):
    path = write(tmp_path / "reviews.tsv", delimiter.join(["rating", "title", "review"]) + "\n5" + delimiter + "a"
                 + delimiter + "b\n")
    with pytest.raises(ValueError, match="must be comma-separated"):
        read_amazon_file(path)


def test_empty_and_missing_files(tmp_path):
    with pytest.raises(ValueError, match="is empty"):
        read_amazon_file(write(tmp_path / "empty.csv", ""))
    with pytest.raises(ValueError, match="has no reviews"):
        read_amazon_file(write(tmp_path / "header_only.csv", "rating,title,review\n"))
    with pytest.raises(FileNotFoundError, match="not found"):
        read_amazon_file(tmp_path / "nope.csv")


def test_malformed_row_is_a_clear_error(tmp_path):
    path = write(tmp_path / "reviews.csv", '5,"a","b"\n4,"c","d","extra","fields"\n')
    with pytest.raises(ValueError, match="Could not read .*reviews.csv as csv"):
        read_amazon_file(path)
