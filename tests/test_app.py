"""The Gradio app, launched in-process on a free loopback port with tiny models and called through gradio_client:
every endpoint, per-review messages for bad input, malformed CSVs, a missing model, and 50 concurrent clients."""

import csv
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest
import torch
from gradio_client import Client, handle_file

import app
from data_prep.topic_model import OTHER_LABEL
import modeling
from modeling import serving
from tests.conftest import KITCHEN_REVIEW, MUSIC_REVIEW, NON_ENGLISH_REVIEW, TOPIC_LABELS, app_process

REPO_ROOT = Path(__file__).resolve().parent.parent
RATING_LABELS = ["1 star", "2 stars", "3 stars", "4 stars", "5 stars"]
REVIEW = app.RATING_AGE_EXAMPLES[0]

# Gradio's queue itself calls pandas APIs that pandas 3 deprecates.
pytestmark = pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning")


@pytest.fixture(scope="module")
def served_app(topic_classifier, rating_age_model, serve_app):
    demo = app.build_demo(topic_classifier, rating_age_model)
    url = serve_app(demo)
    yield url
    demo.close()


@pytest.fixture(scope="module")
def client(served_app) -> Client:
    return Client(served_app, verbose=False)


def confidences(label_value) -> dict[str, float]:
    """gradio_client's form of a gr.Label value -> {label: probability}."""
    return {item["label"]: item["confidence"] for item in label_value["confidences"]}


def test_endpoints_are_named_topic_rating_age_and_batch(client):
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert {"/topic", "/rating_age", "/batch"} <= set(endpoints)


def test_topic_endpoint_gives_probabilities_of_all_six_categories(client):
    scores, words, message = client.predict(app.TOPIC_EXAMPLES[0], api_name="/topic")
    probabilities = confidences(scores)
    assert set(probabilities) == set(TOPIC_LABELS)
    assert sum(probabilities.values()) == pytest.approx(1.0, abs=1e-4)
    assert scores["label"] in TOPIC_LABELS and scores["label"] in message
    assert words == ""  # this topic model folder has no topic_model/


def test_rating_age_endpoint_gives_star_distribution_and_age_in_years(client):
    scores, age, message = client.predict(REVIEW, api_name="/rating_age")
    probabilities = confidences(scores)
    assert set(probabilities) == set(RATING_LABELS)
    assert sum(probabilities.values()) == pytest.approx(1.0, abs=1e-4)
    assert 0 < float(age) < 120
    assert scores["label"] in message and "years old" in message


def test_app_answers_what_the_transformers_pipeline_answers(
    rating_age_model, topic_classifier, multitask_model_dir, topic_model_dir
):
    from transformers import pipeline

    texts = app.RATING_AGE_EXAMPLES + app.TOPIC_EXAMPLES  # of different lengths: padded and sorted differently
    expected_rating = modeling.load_rating_age_pipeline(str(multitask_model_dir))(texts, batch_size=4)
    expected_topic = pipeline("text-classification", model=str(topic_model_dir), top_k=None)(texts, batch_size=4)
    for served, expected in zip(rating_age_model.predict(texts), expected_rating):
        assert served["rating"] == expected["rating"]
        assert served["age"] == pytest.approx(expected["age"], abs=0.11)
        for label, probability in expected["rating_scores"].items():
            assert served["rating_scores"][label] == pytest.approx(probability, abs=1e-5)
    for served, expected in zip(topic_classifier.predict(texts), expected_topic):
        assert served["scores"] == pytest.approx({item["label"]: item["score"] for item in expected}, abs=1e-5)


def test_bfloat16_autocast_stays_close_to_float32(rating_age_model):
    faster = serving.RatingAgeModel.from_pipeline(rating_age_model.pipeline, autocast_dtype=torch.bfloat16)
    texts = app.RATING_AGE_EXAMPLES
    for exact, approximate in zip(rating_age_model.predict(texts), faster.predict(texts)):
        assert approximate["rating_scores"] == pytest.approx(exact["rating_scores"], abs=1e-2)
        assert approximate["age"] == pytest.approx(exact["age"], abs=1.0)


@pytest.mark.parametrize("review", ["", "   \n\t "])
def test_empty_review_gets_a_message_in_its_own_outputs(client, review):
    scores, age, message = client.predict(review, api_name="/rating_age")
    assert age == "" and message == app.EMPTY_REVIEW_MESSAGE
    topic_scores, _, topic_message = client.predict(review, api_name="/topic")
    assert topic_message == app.EMPTY_REVIEW_MESSAGE


def test_empty_review_does_not_fail_the_rest_of_its_batch(rating_age_model, topic_classifier):
    batch = [REVIEW, "  ", app.RATING_AGE_EXAMPLES[1], None]
    scores, ages, messages = app.rating_age_endpoint(rating_age_model, None, batch)
    assert [bool(age) for age in ages] == [True, False, True, False]
    assert messages[1] == messages[3] == app.EMPTY_REVIEW_MESSAGE and "years old" in messages[2]
    scores, _, messages = app.topic_endpoint(topic_classifier, None, batch)
    assert [value is not None for value in scores] == [True, False, True, False]


def test_one_megabyte_review_is_truncated_to_the_model_limit(client, rating_age_model):
    huge_review = (REVIEW + " ") * (1_000_000 // (len(REVIEW) + 1))
    assert len(huge_review.encode()) > 990_000
    scores, age, message = client.predict(huge_review, api_name="/rating_age")
    assert float(age) > 0 and f"limit of {rating_age_model.max_length} tokens" in message


def write_csv(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_batch_endpoint_returns_the_csv_with_predictions_and_a_chart(client, tmp_path):
    rows = [{"title": f"t{index}", "review": text} for index, text in enumerate(app.RATING_AGE_EXAMPLES)]
    rows.append({"title": "empty", "review": " "})
    csv_path = write_csv(tmp_path / "reviews.csv", rows)
    predictions_path, chart, message = client.predict(handle_file(str(csv_path)), "review", api_name="/batch")
    predicted = pd.read_csv(predictions_path)
    assert list(predicted["review"]) == [row["review"] for row in rows]
    assert set(predicted["predicted_rating"][:-1]) <= {1, 2, 3, 4, 5}
    assert predicted["predicted_age"][:-1].between(0, 120).all()
    assert set(predicted["predicted_topic"][:-1]) <= set(TOPIC_LABELS)
    assert predicted[["predicted_rating", "predicted_age", "predicted_topic"]].iloc[-1].isna().all()
    assert predicted["prediction_note"].fillna("").tolist() == [""] * 5 + ["empty review"]
    assert chart is not None
    assert "Predicted 5 reviews" in message and "1 empty row" in message


def test_batch_endpoint_guesses_the_text_column_when_none_is_chosen(client, tmp_path):
    csv_path = write_csv(tmp_path / "reviews.csv", [{"id": "1", "Review Text": REVIEW}])
    predictions_path, _, message = client.predict(handle_file(str(csv_path)), None, api_name="/batch")
    assert "`Review Text`" in message and len(pd.read_csv(predictions_path)) == 1


@pytest.mark.parametrize(
    "content, reason",
    [
        (b"", "the file is empty"),
        (b'review,title\n"unclosed quote,x\n', "not a well-formed CSV"),
        (b"review\nfine\ntoo,many,fields\n", "not a well-formed CSV"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe\x00", "not text"),
        (b"review\n\x81\x8d\x8f\x90\x9d\n", "neither UTF-8 nor Windows-1252"),
        (b"review,title\n", "no rows"),
    ],
)
def test_malformed_csv_gets_a_clear_message(topic_classifier, rating_age_model, tmp_path, content, reason):
    csv_path = tmp_path / "broken.csv"
    csv_path.write_bytes(content)
    predictions, chart, message = app.batch_endpoint(
        topic_classifier, rating_age_model, tmp_path, app.MAX_CSV_ROWS, str(csv_path), "review"
    )
    assert predictions is None and chart is None
    assert message.startswith("⚠️ Could not read the uploaded file") and reason in message


def test_malformed_csv_through_the_api_gets_a_message(client, tmp_path):
    csv_path = tmp_path / "broken.csv"
    csv_path.write_bytes(b"review\nfine\ntoo,many,fields\n")
    predictions, chart, message = client.predict(handle_file(str(csv_path)), "review", api_name="/batch")
    assert predictions is None and "not a well-formed CSV" in message


def test_unknown_text_column_gets_a_message_listing_the_columns(client, tmp_path):
    csv_path = write_csv(tmp_path / "reviews.csv", [{"title": "x", "body_text": REVIEW}])
    predictions, _, message = client.predict(handle_file(str(csv_path)), "review", api_name="/batch")
    assert predictions is None and "No column `review`" in message and "body_text" in message


def test_too_many_rows_get_a_message(topic_classifier, rating_age_model, tmp_path):
    csv_path = write_csv(tmp_path / "reviews.csv", [{"review": REVIEW}] * 4)
    _, _, message = app.batch_endpoint(topic_classifier, rating_age_model, tmp_path, 3, str(csv_path), "review")
    assert "has 4 rows" in message and "at most 3" in message


def test_a_long_csv_reports_its_progress_and_gets_the_same_predictions(topic_classifier, rating_age_model, tmp_path,
                                                                        monkeypatch):
    rows = [{"review": f"{REVIEW} {index}"} for index in range(25)]
    csv_path = write_csv(tmp_path / "reviews.csv", rows)
    whole, _, _ = app.batch_endpoint(topic_classifier, rating_age_model, tmp_path / "whole", 100, str(csv_path),
                                     "review")
    monkeypatch.setattr(app, "PROGRESS_ROWS", 10)
    heard = []
    chunked, _, message = app.batch_endpoint(
        topic_classifier, rating_age_model, tmp_path / "chunked", 100, str(csv_path), "review",
        lambda done, desc, unit: heard.append((desc, done)))
    assert heard == [(what, (start, 25)) for what in ("Rating and age", "Topics") for start in (0, 10, 20)]
    assert "Predicted 25 reviews" in message
    assert pd.read_csv(chunked)[["predicted_rating", "predicted_topic"]].equals(
        pd.read_csv(whole)[["predicted_rating", "predicted_topic"]])


def test_text_column_dropdown_is_filled_from_the_csv_header(tmp_path):
    csv_path = write_csv(tmp_path / "reviews.csv", [{"id": "1", "title": "x", "review": REVIEW}])
    dropdown = app.text_column_choices(str(csv_path))
    assert [choice[0] for choice in dropdown.choices] == ["id", "title", "review"] and dropdown.value == "review"


def test_a_model_that_cannot_be_loaded_leaves_a_message_and_the_other_tab_works(rating_age_model, tmp_path, serve_app):
    topic_classifier, topic_message = app.load_model_or_message(
        serving.TopicClassifier, str(tmp_path / "no_such_model"), "topic model", "--topic-model", False
    )
    assert topic_classifier is None and "could not be loaded" in topic_message and "--topic-model" in topic_message
    demo = app.build_demo(None, rating_age_model, topic_message=topic_message)
    url = serve_app(demo)
    try:
        shown = [block.value for block in demo.blocks.values() if type(block).__name__ == "Markdown"]
        assert topic_message in shown  # the Topic tab's warning
        client = Client(url, verbose=False)
        _, _, message = client.predict(REVIEW, api_name="/topic")
        assert message == topic_message
        _, age, _ = client.predict(REVIEW, api_name="/rating_age")
        assert float(age) > 0
    finally:
        demo.close()


def test_fifty_concurrent_clients_are_all_answered_in_shared_batches(served_app, rating_age_model, monkeypatch):
    batch_sizes = []
    predict = rating_age_model.predict

    def recording_predict(texts):
        batch_sizes.append(len(texts))
        return predict(texts)

    monkeypatch.setattr(rating_age_model, "predict", recording_predict)
    reviews = [app.RATING_AGE_EXAMPLES[index % 5] if index % 10 else "   " for index in range(50)]

    def ask(index_and_review):
        index, review = index_and_review
        client = Client(served_app, verbose=False)
        if index % 2:
            return "topic", review, client.predict(review, api_name="/topic")
        return "rating_age", review, client.predict(review, api_name="/rating_age")

    with ThreadPoolExecutor(max_workers=25) as pool:
        answers = list(pool.map(ask, enumerate(reviews), timeout=120))

    assert len(answers) == 50
    for endpoint, review, (scores, second, message) in answers:
        if not review.strip():
            assert message == app.EMPTY_REVIEW_MESSAGE
            continue
        expected_labels = RATING_LABELS if endpoint == "rating_age" else TOPIC_LABELS
        assert set(confidences(scores)) == set(expected_labels)
        assert float(second) > 0 if endpoint == "rating_age" else second == ""
    assert sum(batch_sizes) == 25 and max(batch_sizes) > 1  # requests were merged, none lost


def test_frozen_features_topic_folder_is_served_without_remote_code(tiny_encoder_dir, tiny_tokenizer, tmp_path):
    model = modeling.TopicFeaturesModel.from_encoder(
        str(tiny_encoder_dir), id2label=dict(enumerate(TOPIC_LABELS)),
        label2id={label: index for index, label in enumerate(TOPIC_LABELS)},
    )
    model.save_pretrained(tmp_path)
    tiny_tokenizer.save_pretrained(tmp_path)
    classifier = serving.TopicClassifier.load(str(tmp_path))  # trust_remote_code stays off
    assert isinstance(classifier.backend.model, modeling.TopicFeaturesModel)
    scores, _, message = app.topic_endpoint(classifier, None, [app.TOPIC_EXAMPLES[3], ""])
    assert set(scores[0]) == set(TOPIC_LABELS) and scores[1] is None and message[1] == app.EMPTY_REVIEW_MESSAGE


def test_topic_words_are_those_of_the_topic_behind_the_label_shown(topic_model_dir, tmp_path):
    import shutil

    from data_prep.topic_model import TopicModel

    folder = tmp_path / "topic_with_words"
    shutil.copytree(topic_model_dir, folder)
    texts = [*app.TOPIC_EXAMPLES, "great music album songs", "the movie was slow", "refund returned broken"] * 5
    topic_model = TopicModel.fit(texts, num_topics=3, min_df=2, max_df=0.9)
    subjects = {"music": "music", "movie": "movies", "refund": "refund-and-return"}
    topic_model.set_topic_categories([next((subjects[w] for w in words if w in subjects), None)
                                      for words in topic_model.topic_top_words(3)])
    topic_model.save(folder / "topic_model")
    classifier = serving.TopicClassifier.load(str(folder))
    assert classifier.topic_words_model is not None

    review = "I returned the broken player for a refund, and the music album was fine."
    refund_words, music_words = classifier.topic_words([review, review], topics=["refund-and-return", "music"])
    assert "refund" in refund_words and "music" in music_words
    scores, words, _ = app.topic_endpoint(classifier, None, [review, " "])
    shown = max(scores[0], key=scores[0].get)
    assert words[0] == ", ".join(classifier.topic_words_model.decision_words([review], [shown])[0])
    assert words[1] == ""


@pytest.mark.slow
def test_a_kitchen_review_and_non_english_text_are_other_with_a_plain_message(real_topic_classifier):
    scores, words, messages = app.topic_endpoint(real_topic_classifier, None, [KITCHEN_REVIEW, NON_ENGLISH_REVIEW,
                                                                               MUSIC_REVIEW])
    assert [max(s, key=s.get) for s in scores] == [OTHER_LABEL, OTHER_LABEL, "music"]
    assert all("none of the categories" in message for message in messages[:2])
    assert words[1] == ""  # no word of the Chinese text is in the topic vocabulary


def test_the_models_other_class_is_the_labellers():
    from modeling.configuration_topic_features import OTHER_TOPIC

    assert OTHER_TOPIC == OTHER_LABEL


def test_model_sources_come_from_flags_then_environment_then_hub_defaults(monkeypatch):
    monkeypatch.delenv("TOPIC_MODEL", raising=False)
    monkeypatch.delenv("MULTITASK_MODEL", raising=False)
    monkeypatch.delenv("GRADIO_SERVER_NAME", raising=False)
    monkeypatch.delenv("APP_BF16", raising=False)
    defaults = app.parse_arguments([])
    assert (defaults.topic_model, defaults.multitask_model) == (app.DEFAULT_TOPIC_MODEL, app.DEFAULT_MULTITASK_MODEL)
    assert defaults.host == "127.0.0.1" and not defaults.trust_remote_code and not defaults.bf16
    monkeypatch.setenv("TOPIC_MODEL", "me/topics@v2")
    monkeypatch.setenv("MULTITASK_MODEL", "me/rating-age")
    from_environment = app.parse_arguments([])
    assert (from_environment.topic_model, from_environment.multitask_model) == ("me/topics@v2", "me/rating-age")
    assert app.parse_arguments(["--topic-model", "folder"]).topic_model == "folder"
    monkeypatch.setenv("APP_BF16", "1")
    assert app.parse_arguments([]).bf16 and not app.parse_arguments(["--topic-model", "x"]).trust_remote_code


def test_length_sorted_chunks_cover_every_review_once_longest_first():
    lengths = [5, 100, 7, 98, 50, 6, 99, 49]
    chunks = serving.length_sorted_chunks(lengths, max_batch_size=2, max_padding_fraction=None)
    assert sorted(index for chunk in chunks for index in chunk) == list(range(8))
    assert all(len(chunk) <= 2 for chunk in chunks) and chunks[0] == [1, 6]
    tight = serving.length_sorted_chunks(lengths, max_batch_size=32, max_padding_fraction=0.2)
    assert tight == [[1, 6, 3], [4, 7], [2, 5], [0]]  # 5 tokens would be 2/7 padding beside 7


def test_python_app_py_serves_on_loopback(multitask_model_dir, topic_model_dir, tmp_path):
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    environment.pop("GRADIO_SERVER_NAME", None)
    arguments = ["--multitask-model", str(multitask_model_dir), "--topic-model", str(topic_model_dir)]
    with app_process(arguments, REPO_ROOT, environment, tmp_path / "app.log", timeout=90) as url:
        client = Client(url, verbose=False)
        _, age, _ = client.predict(REVIEW, api_name="/rating_age")
        scores, _, _ = client.predict(app.TOPIC_EXAMPLES[0], api_name="/topic")
        assert float(age) > 0 and set(confidences(scores)) == set(TOPIC_LABELS)
