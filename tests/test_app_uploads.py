"""The Batch tab's CSV upload as users send it: Excel's encodings, formula cells, earlier predictions; and the text
boxes' length limit."""

import pandas as pd
import pytest

import app
from data_prep.review_csv import FORMULA_PREFIXES

REVIEW = "Runs small, the fabric is lovely though."


def run_batch(topic_classifier, rating_age_model, tmp_path, content: bytes, column: str = "review"):
    csv_path = tmp_path / "upload.csv"
    csv_path.write_bytes(content)
    predictions, _, message = app.batch_endpoint(topic_classifier, rating_age_model, tmp_path / "out",
                                                 app.MAX_CSV_ROWS, str(csv_path), column)
    return (pd.read_csv(predictions, dtype=str, keep_default_na=False) if predictions else None), message


@pytest.fixture
def batch(topic_classifier, rating_age_model, tmp_path):
    (tmp_path / "out").mkdir()
    return lambda content, column="review": run_batch(topic_classifier, rating_age_model, tmp_path, content, column)


def test_utf8_with_a_byte_order_mark_keeps_its_first_column_name(batch):
    table, message = batch("\ufeffreview,title\nCafé au lait colour,Nice\n".encode("utf-8"))
    assert list(table.columns[:2]) == ["review", "title"] and table["review"][0] == "Café au lait colour"
    assert "Windows-1252" not in message


def test_windows_1252_from_excel_is_read_with_a_note(batch):
    table, message = batch("review,title\nCafé au lait colour – lovely,Nice\n".encode("cp1252"))
    assert table["review"][0] == "Café au lait colour – lovely"
    assert "not UTF-8: it was read as Windows-1252" in message


def test_formula_cells_are_neutralized_in_the_download(batch):
    content = ('review,note\n"=HYPERLINK(""http://evil.example"",""x"")",+1\n'
               f'"{REVIEW}",@SUM(A1)\n"-2 sizes too small",plain\n').encode()
    table, message = batch(content)
    assert table["review"].tolist() == ['\'=HYPERLINK("http://evil.example","x")', REVIEW, "'-2 sizes too small"]
    assert table["note"].tolist() == ["'+1", "'@SUM(A1)", "plain"]
    assert not any(str(value).startswith(FORMULA_PREFIXES) for value in table.to_numpy().ravel())
    assert "4 cells starting with =, +, - or @" in message


def test_an_upload_with_predicted_columns_keeps_them_beside_the_new_ones(batch):
    table, message = batch(f'review,predicted_rating,prediction_note\n"{REVIEW}",1,mine\n'.encode())
    assert table["predicted_rating (uploaded)"][0] == "1" and table["prediction_note (uploaded)"][0] == "mine"
    assert table["predicted_rating"][0] in {"1", "2", "3", "4", "5"} and table["prediction_note"][0] == ""
    assert "already had `predicted_rating`, `prediction_note`" in message


def test_a_text_column_named_like_a_prediction_is_still_read(batch):
    table, _ = batch(f'predicted_topic\n"{REVIEW}"\n'.encode(), column="predicted_topic")
    assert table["predicted_topic (uploaded)"][0] == REVIEW and table["predicted_topic"][0] != REVIEW


def test_review_text_boxes_have_a_maximum_length(topic_classifier, rating_age_model):
    demo = app.build_demo(topic_classifier, rating_age_model)
    boxes = [block for block in demo.blocks.values()
             if type(block).__name__ == "Textbox" and getattr(block, "label", None) == "Review"]
    assert len(boxes) == 2 and all(box.max_length == app.MAX_REVIEW_CHARS for box in boxes)
