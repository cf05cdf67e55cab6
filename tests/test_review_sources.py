"""Reviews from where users keep them: Hub datasets (served by the loopback Hub) and local csv / json / parquet files,
in the real schemas (small slices of ../shared/data renamed to each schema's columns and split names), with the
columns found by the built-in layouts or named by flags, and one clear error for a column that is not there."""

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
from huggingface_hub import HfApi

from hub_fixtures import hub_server, loopback_hub  # noqa: F401 - fixtures
from tests.conftest import AMAZON_FILES, REPO_ROOT, read_clothing_frame, require_shared_data, write_amazon_slices

from data_prep import topics
from data_prep.clothing import load_clothing_reviews
from data_prep.review_source import ReviewSourceArguments, find_split, resolve_columns

# The Hub copy saattrupdan/womens-clothing-ecommerce-reviews (card revision fea1965): snake_case, no title.
HUB_CLOTHING_COLUMNS = {"Age": "age", "Review Text": "review_text", "Rating": "rating",
                        "Recommended IND": "recommended_ind", "Positive Feedback Count": "positive_feedback_count",
                        "Division Name": "division_name", "Department Name": "department_name",
                        "Class Name": "class_name"}
FAST_LABELLER = ["--no_mention_filter", "--num_topics", "6", "--topic_mapping", "keywords", "--review_weight", "0",
                 "--min_df", "2"]


def write_hub_dataset(folder, splits: dict[str, pd.DataFrame], config_name: str = "default"):
    """A dataset repo laid out as on the Hub: parquet files per split, the split names declared in the card."""
    (folder / "data").mkdir(parents=True)
    lines = ["---", "configs:", f"- config_name: {config_name}", "  data_files:"]
    for name, frame in splits.items():
        frame.to_parquet(folder / "data" / f"{name}-00000-of-00001.parquet", index=False)
        lines += [f"  - split: {name}", f"    path: data/{name}-*"]
    (folder / "README.md").write_text("\n".join([*lines, "---", "A test copy.", ""]))
    return folder


def push_dataset(folder, repo_id: str) -> None:
    api = HfApi()
    api.create_repo(repo_id, repo_type="dataset", exist_ok=True)
    api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="dataset")


def amazon_frame(tmp_path, rows_per_file: int = 150) -> pd.DataFrame:
    require_shared_data(AMAZON_FILES[0] if AMAZON_FILES else REPO_ROOT / "missing")
    (tmp_path / "slices").mkdir()
    paths = write_amazon_slices(tmp_path / "slices", rows_per_file=rows_per_file)
    frame = pd.concat([pd.read_csv(path, dtype=str, keep_default_na=False) for path in paths], ignore_index=True)
    return frame.loc[frame["rating"].ne(""), ["rating", "title", "review"]].reset_index(drop=True)  # both have stars


@pytest.fixture
def hub_clothing_copy(tmp_path, clothing_file) -> dict[str, int]:
    """300 real reviews in the Hub copy's layout, split train / val / test (200 / 50 / 50), on the loopback Hub."""
    frame = read_clothing_frame(clothing_file, nrows=300).rename(columns=HUB_CLOTHING_COLUMNS)
    frame = frame[list(HUB_CLOTHING_COLUMNS.values())]
    splits = {"train": frame.iloc[:200], "val": frame.iloc[200:250], "test": frame.iloc[250:]}
    push_dataset(write_hub_dataset(tmp_path / "clothing_copy", splits), "user/womens-clothing-ecommerce-reviews")
    return {name: int(part["review_text"].fillna("").str.strip().ne("").sum()) for name, part in splits.items()}


def test_split_names_val_and_valid_are_validation():
    assert find_split(["train", "val", "test"], "validation", None, "x") == "val"
    assert find_split(["train", "valid"], "validation", None, "x") == "valid"
    assert find_split(["train"], "test", None, "x") is None
    with pytest.raises(ValueError, match=r"no split 'dev' for validation; the splits are \['train', 'val'\]"):
        find_split(["train", "val"], "validation", "dev", "x")


def test_layouts_are_found_from_the_columns():
    hub_copy = resolve_columns(list(HUB_CLOTHING_COLUMNS.values()), "x", required=("text", "rating", "age"))
    assert hub_copy == {"text": "review_text", "title": None, "rating": "rating", "age": "age"}
    mcauley = ["rating", "title", "text", "images", "asin", "parent_asin", "user_id", "timestamp", "helpful_vote"]
    assert resolve_columns(mcauley, "x", required=("text",))["text"] == "text"
    polarity = resolve_columns(["label", "title", "content"], "x", required=("text",))
    assert polarity == {"text": "content", "title": "title", "rating": None, "age": None}  # a label is not stars


def test_a_column_flag_naming_a_missing_column_is_one_error_listing_the_columns():
    args = ReviewSourceArguments(text_column_name="body")
    with pytest.raises(ValueError, match=r"--text_column_name 'body' is not a column; the columns are "
                                         r"\['rating', 'title', 'text'\]"):
        resolve_columns(["rating", "title", "text"], "x", required=("text",), args=args)


def test_local_json_parquet_and_csv_files_with_named_columns_keep_their_splits(tmp_path, clothing_file):
    frame = read_clothing_frame(clothing_file, nrows=240).rename(
        columns={"Review Text": "body", "Rating": "stars", "Age": "years", "Title": "headline"})
    train, validation, test = tmp_path / "train.jsonl", tmp_path / "validation.parquet", tmp_path / "test.csv.gz"
    frame.iloc[:160].to_json(train, orient="records", lines=True)
    frame.iloc[160:200].to_parquet(validation)
    frame.iloc[200:].to_csv(test)
    args = ReviewSourceArguments(text_column_name="body", title_column_name="headline", label_column_name="stars",
                                 age_column_name="years")
    data = load_clothing_reviews(train_file=train, validation_file=validation, test_file=test, source_args=args)
    expected = {"train": frame.iloc[:160], "validation": frame.iloc[160:200], "test": frame.iloc[200:]}
    for name, part in expected.items():
        usable = part[part["body"].fillna("").str.strip().ne("")]
        assert len(data.splits[name]) == len(usable), name
    first = expected["train"].iloc[0]
    assert data.splits["train"][0]["text"].startswith(str(first["headline"]))
    with pytest.raises(ValueError, match=r"cannot tell which columns hold the text .*the columns are "):
        load_clothing_reviews(train_file=train)  # renamed columns and no flags


def test_train_multitask_reads_the_hub_copy_without_titles_and_keeps_its_splits(
        loopback_hub, hub_clothing_copy, tmp_path, tiny_encoder_dir):
    output_dir = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "TOKENIZERS_PARALLELISM": "false"}
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "train_multitask.py"), "--dataset_name",
         "user/womens-clothing-ecommerce-reviews", "--model_name_or_path", str(tiny_encoder_dir), "--output_dir",
         str(output_dir), "--do_train", "--do_eval", "--do_predict", "--max_steps", "2", "--max_seq_length", "64",
         "--per_device_train_batch_size", "8", "--report_to", "none", "--save_strategy", "no"],
        capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    output = result.stdout + result.stderr
    assert "layout clothing-hub" in output and "Keeping the source's own train / validation / test splits" in output
    results = json.loads((output_dir / "all_results.json").read_text())
    assert (results["train_samples"], results["eval_samples"]) == (hub_clothing_copy["train"], hub_clothing_copy["val"])
    assert len(pd.read_csv(output_dir / "test_predictions.csv")) == hub_clothing_copy["test"]


def test_topics_label_hub_copies_in_the_mcauley_2023_and_amazon_polarity_schemas(loopback_hub, tmp_path):
    frame = amazon_frame(tmp_path)
    mcauley = pd.DataFrame({"rating": frame["rating"].astype(float), "title": frame["title"], "text": frame["review"],
                            "asin": "B000000000", "helpful_vote": 0, "verified_purchase": True})
    push_dataset(write_hub_dataset(tmp_path / "mcauley", {"full": mcauley}, config_name="raw_review_Books"),
                 "user/Amazon-Reviews-2023")
    polarity = pd.DataFrame({"label": (frame["rating"].astype(int) > 3).astype(int), "title": frame["title"],
                             "content": frame["review"]})
    push_dataset(write_hub_dataset(tmp_path / "polarity", {"train": polarity.iloc[:300], "test": polarity.iloc[300:]}),
                 "user/amazon_polarity")

    from_mcauley = topics.main(["--dataset_name", "user/Amazon-Reviews-2023", "--dataset_config_name",
                                "raw_review_Books", "--train_split_name", "full", "--output_dir",
                                str(tmp_path / "from_mcauley"), *FAST_LABELLER])
    from_polarity = topics.main(["--dataset_name", "user/amazon_polarity", "--output_dir",
                                 str(tmp_path / "from_polarity"), *FAST_LABELLER])
    for result, rows, folder in ((from_mcauley, len(mcauley), "from_mcauley"),
                                 (from_polarity, len(polarity), "from_polarity")):
        assert result.report["reviews_read"] == rows
        labelled = sum(len(split) for split in result.splits.values())
        assert labelled == result.report["reviews_after_cleaning"] == rows - sum(
            result.report["dropped_while_reading"].values())
        assert (tmp_path / folder / "dataset_dict.json").is_file()
    ratings = [rating for split in from_mcauley.splits.values() for rating in split["rating"]]
    assert sorted(set(ratings)) == sorted({int(value) for value in mcauley["rating"]})
    assert {rating for split in from_polarity.splits.values() for rating in split["rating"]} == {None}

    with pytest.raises(ValueError, match=r"--text_column_name 'review' is not a column; the columns are "
                                         r"\['label', 'title', 'content'\]"):
        topics.main(["--dataset_name", "user/amazon_polarity", "--text_column_name", "review", "--output_dir",
                     str(tmp_path / "wrong"), *FAST_LABELLER])


def test_header_less_polarity_csv_takes_its_column_order_from_the_layout(tmp_path, caplog):
    path = tmp_path / "polarity.csv"
    rows = ['2,"Great read","Bought it on Amazon, loved the book"', '1,"Broken","The DVD arrived broken"'] * 60
    path.write_text("\n".join(rows) + "\n")
    from data_prep.amazon import read_amazon_file

    with caplog.at_level("WARNING", logger="data_prep"):
        as_full = read_amazon_file(path)  # Review Full's order by default: the label reads as stars, with a warning
    assert as_full["rating"][:2] == ["2", "1"] and "--column_layout amazon-polarity" in caplog.text
    as_polarity = read_amazon_file(path, source_args=ReviewSourceArguments(column_layout="amazon-polarity"))
    assert set(as_polarity["rating"]) == {None} and as_polarity["review"][1] == "The DVD arrived broken"


def test_ratings_of_any_type_are_read_as_stars_and_a_sentiment_label_is_refused():
    from datasets import ClassLabel, Dataset

    from data_prep.review_source import star_ratings_as_text

    stars = Dataset.from_dict({"rating": [0, 4, 2]}).cast_column(
        "rating", ClassLabel(names=["1 star", "2 stars", "3 stars", "4 stars", "5 stars"]))
    assert star_ratings_as_text(stars, "rating", "x")["rating"] == ["1", "5", "3"]  # the names, not the index
    numbers = Dataset.from_dict({"rating": [5.0, float("nan"), 1.0, None]})
    assert star_ratings_as_text(numbers, "rating", "x")["rating"] == ["5", None, "1", None]
    sentiment = Dataset.from_dict({"label": [0, 1]}).cast_column("label", ClassLabel(names=["negative", "positive"]))
    with pytest.raises(ValueError, match=r"class label named \['negative', 'positive'\], not 1-5 stars"):
        star_ratings_as_text(sentiment, "label", "x")
