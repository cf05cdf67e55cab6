"""The labelled topic dataset through the (loopback) Hub: pushed with its topic model, report and a dataset card that
says what the report says, pulled back by `train_topic.py --dataset_name`."""

import json

import pytest
from datasets import load_dataset
from huggingface_hub import DatasetCard, HfApi

from hub_fixtures import hub_server, loopback_hub  # noqa: F401 - fixtures
from tests.conftest import SHARED_DATA, require_shared_data, write_amazon_slices

import train_topic
from data_prep import topics
from data_prep.topic_hub import PROJECT_VALIDITY_FIGURES, check_dataset_push

REPO_ID = "user/amazon-review-topics"
FAST_LABELLER = ["--no_mention_filter", "--num_topics", "6", "--topic_mapping", "keywords", "--review_weight", "0",
                 "--min_df", "2"]


@pytest.fixture
def pushed_topics(loopback_hub, tmp_path):
    require_shared_data(SHARED_DATA / "amazon_reviews.csv.gz")
    inputs = write_amazon_slices(tmp_path, rows_per_file=120)
    result = topics.main(["--input_file", *map(str, inputs), "--output_dir", str(tmp_path / "topics"),
                          "--push_to_hub", "--hub_dataset_id", REPO_ID, *FAST_LABELLER])
    return result


def test_pushed_dataset_loads_by_id_with_its_labels_topic_model_and_card(pushed_topics):
    pulled = load_dataset(REPO_ID)
    for name, split in pushed_topics.splits.items():
        assert pulled[name]["text"] == split["text"]
        assert pulled[name].features["label"].names == split.features["label"].names
    files = HfApi().list_repo_files(REPO_ID, repo_type="dataset")
    assert {"topics.json", "topics.png", "topic_model/topic_model.json", "README.md"} <= set(files), files

    card = DatasetCard.load(REPO_ID, repo_type="dataset")
    metadata = card.data.to_dict()
    assert metadata["task_categories"] == ["text-classification"] and metadata["license"] == "other"
    assert {split["split"] for split in metadata["configs"][0]["data_files"]} == {"train", "validation", "test"}
    assert metadata["dataset_info"]["features"]  # push_to_hub's metadata kept under the generated card
    report = pushed_topics.report
    for name, counts in report["category_sizes"].items():  # the label table holds the report's counts
        shown = [counts[label] for label in report["categories"] if any(c.get(label) for c in
                                                                       report["category_sizes"].values())]
        assert f"| {name} | " + " | ".join(map(str, shown)) + " |" in card.text
    for topic in report["topics"]:
        assert f"| {topic['topic']} | " in card.text and ", ".join(topic["top_words"][:3]) in card.text
    assert "amazon_reviews.csv.gz" in card.text and "No mention filter" in card.text
    if PROJECT_VALIDITY_FIGURES.is_file():  # a clone of the repo: the labeller's measured validity is quoted
        validity = json.loads(PROJECT_VALIDITY_FIGURES.read_text())["rows"]["labeller (with other)"]
        assert f"{validity['media_precision']:.3f}" in card.text
        assert "this dataset was labelled with other settings" in card.text  # 6 topics, keywords: not the defaults


def test_train_topic_trains_from_the_pushed_dataset(pushed_topics, tmp_path, tiny_encoder_dir):
    output_dir = tmp_path / "model"
    results = train_topic.main([
        "--dataset_name", REPO_ID, "--model_name_or_path", str(tiny_encoder_dir), "--method", "features",
        "--output_dir", str(output_dir), "--do_train", "--do_eval", "--max_steps", "2", "--report_to", "none",
        "--save_strategy", "no",
    ])
    assert results["train_samples"] == len(pushed_topics.splits["train"])
    assert results["eval_samples"] == len(pushed_topics.splits["validation"])
    assert (output_dir / "topic_model" / "topic_model.json").is_file()  # the labeller travels with the classifier
    card = (output_dir / "README.md").read_text()
    assert f"{pushed_topics.report['reviews_read']:,} Amazon reviews read" in card
    assert f"- {REPO_ID}" in card.split("---")[1]  # the model card links the dataset it was trained on


def test_a_push_that_cannot_work_fails_before_labelling(monkeypatch, tmp_path):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty_home"))
    monkeypatch.setattr("huggingface_hub.utils._auth.get_token", lambda: None)
    monkeypatch.setattr("data_prep.topic_hub.get_token", lambda: None)
    with pytest.raises(ValueError, match="is not a Hub dataset id"):
        check_dataset_push("no-namespace", "hf_token")
    with pytest.raises(ValueError, match="needs a Hugging Face token"):
        topics.main(["--input_file", "x.csv", "--output_dir", str(tmp_path), "--push_to_hub", "--hub_dataset_id",
                     REPO_ID])
