#!/usr/bin/env python
"""Gradio app (a Hugging Face Space) serving the topic classifier and the rating-and-age model.

    python app.py --multitask-model out --topic-model topic_finetune --port 7860

Each model source is a local folder or a Hub repo id, optionally `repo_id@revision`; flags win over the
`TOPIC_MODEL` / `MULTITASK_MODEL` environment variables, which win over the default Hub repos. Models load
through the Auto classes and pipelines `import modeling` registers; `trust_remote_code` stays off unless
`--trust-remote-code` is given. A model that cannot be loaded leaves a warning in its tab; the rest works.

Serving: the queue merges up to `MAX_QUEUE_BATCH` requests into one call, which `modeling.serving` runs in
length-sorted, padding-tight batches, on the backend `--backend auto` picks for this machine and model (the page's
footer says which and why), or on the one named: torch (`--bf16` adds bfloat16 autocast) or the folders' ONNX export
(`--backend onnx|onnx-int8`). An empty review gets a message in its own
outputs and never fails the other requests of its batch.
"""

import argparse
import atexit
import logging
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import gradio as gr
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from data_prep.topic_model import OTHER_LABEL
from data_prep.review_csv import (
    MalformedCsvError, guess_text_column, neutralize_formulas, read_csv_text, read_reviews_csv,
)
from modeling.backends import BACKENDS, DEFAULT_BACKEND, TORCH
from modeling.hub import PUBLISHED_MULTITASK_MODEL, PUBLISHED_TOPIC_MODEL
from modeling.serving import BatchedReviewModel, RatingAgeModel, TopicClassifier, is_scorable

logger = logging.getLogger(__name__)

DEFAULT_TOPIC_MODEL, DEFAULT_MULTITASK_MODEL = PUBLISHED_TOPIC_MODEL, PUBLISHED_MULTITASK_MODEL

MAX_QUEUE_BATCH = 16  # requests the queue merges into one call of a batched endpoint
MAX_CSV_ROWS = 5000
PROGRESS_ROWS = 100  # a CSV batch reports its progress after this many reviews
QUEUE_MAX_SIZE = 256
MAX_UPLOAD_SIZE = "25mb"
MAX_REVIEW_CHARS = 20_000  # the text boxes' limit: far beyond what the models read (they truncate to their tokens)
OUTPUT_FILE_LIFETIME_S = 3600

EMPTY_REVIEW_MESSAGE = "⚠️ Empty review: type or paste a review to get a prediction."


# Real reviews from ../shared/data (Amazon files for topics, Women's E-Commerce Clothing Reviews for rating/age).
TOPIC_EXAMPLES = [
    "A quick read for history lovers which provides readers a sense of what conflicts Sitting Bull and his people "
    "endured.",
    "When vinyl albums almost became obsolete I really missed listening to Elton John, so happy to have this again "
    "in my music collection.",
    "What a depressing, slllooooww movie!!!! I'm pissed I kept watching WAITING. For it to get better.... It didn't!!",
    "I have other games by this company with no problems, however this one does not download.  I have tried 2 xs "
    "with no luck.",
    "We had to return this item for a refund. It arrived and never worked.",
    "Amazing video quality easy to maneuver wonderful screen size easy set up",
]
RATING_AGE_EXAMPLES = [
    "Really flattering cut, this shirt is perfect for fall. got so many compliments the first time i wore it!",
    "This is a great transition piece. wear with jeans or dress it up with a cute skirt.",
    "Great color and quality but very boxy. even with the drawstring there is no shape going on here.",
    "This product runs either really small or is super high waisted. either way not for me.",
    "This fell apart after wearing it once. for the price, it should hold up better. it's too delicate.",
]
BATCH_EXAMPLE_ROWS = [
    {"title": "Perfect for fall", "review": RATING_AGE_EXAMPLES[0]},
    {"title": "Too boxy", "review": RATING_AGE_EXAMPLES[2]},
    {"title": "Disappointed", "review": RATING_AGE_EXAMPLES[4]},
    {"title": "Never worked", "review": TOPIC_EXAMPLES[4]},
    {"title": "Slow", "review": TOPIC_EXAMPLES[2]},
    {"title": "Elton John", "review": TOPIC_EXAMPLES[1]},
]

CSS = ".model-warning {border-left: 4px solid #d97706; padding-left: 0.75em;}"


def review_problem(text) -> str | None:
    """A message for a review that cannot be scored (missing, empty, whitespace only), else None."""
    return None if is_scorable(text) else EMPTY_REVIEW_MESSAGE


def load_model_or_message(model_class, reference: str, what: str, flag: str, trust_remote_code: bool, **options):
    """(model, None), or (None, a message for the tab) when the model cannot be loaded."""
    try:
        return model_class.load(reference, trust_remote_code=trust_remote_code, **options), None
    except Exception as error:
        logger.exception("Could not load the %s from %s", what, reference)
        reason = f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"
        return None, (
            f"⚠️ The {what} could not be loaded from `{reference}` ({reason[:300]}). "
            f"Start the app with `{flag} FOLDER_OR_REPO_ID[@REVISION]`. The other tabs still work."
        )


# ----- endpoint functions (batched: a list per input, a tuple of lists out) -----


def topic_endpoint(classifier: TopicClassifier | None, unavailable_message: str | None, texts: list[str]):
    """Gradio `/topic`: per review, category probabilities, NMF topic words and a message."""
    if classifier is None:
        return [None] * len(texts), [""] * len(texts), [unavailable_message] * len(texts)
    predictions = classifier.predict(texts)
    try:
        topic_words = classifier.topic_words(texts, topics=[p["topic"] if p else None for p in predictions])
    except Exception as error:  # topic words are an extra: never fail the batch for them
        logger.exception("Topic words failed")
        topic_words = [f"(topic words failed: {type(error).__name__})"] * len(texts)
    scores, words, messages = [], [], []
    for text, prediction, review_words in zip(texts, predictions, topic_words):
        if prediction is None:
            scores.append(None)
            words.append("")
            messages.append(review_problem(text))
            continue
        scores.append(prediction["scores"])
        words.append(", ".join(review_words) if isinstance(review_words, list) else (review_words or ""))
        message = f"Topic: **{prediction['topic']}** ({prediction['scores'][prediction['topic']]:.0%})"
        if prediction["topic"] == OTHER_LABEL:
            message += " — none of the categories this model knows"
        messages.append(message + truncation_note(prediction, classifier))
    return scores, words, messages


def rating_age_endpoint(model: RatingAgeModel | None, unavailable_message: str | None, texts: list[str]):
    """Gradio `/rating_age`: per review, star-rating distribution, age in years (text like "41.3", empty when there is
    no prediction) and a message."""
    if model is None:
        return [None] * len(texts), [""] * len(texts), [unavailable_message] * len(texts)
    scores, ages, messages = [], [], []
    for text, prediction in zip(texts, model.predict(texts)):
        if prediction is None:
            scores.append(None)
            ages.append("")
            messages.append(review_problem(text))
            continue
        scores.append(prediction["rating_scores"])
        ages.append(f"{prediction['age']:.1f}")
        stars = model.config.id2label[prediction["rating"] - 1]
        message = f"Predicted **{stars}**; reviewer about **{prediction['age']:.0f}** years old"
        messages.append(message + truncation_note(prediction, model))
    return scores, ages, messages


def truncation_note(prediction: dict, model: BatchedReviewModel) -> str:
    if not prediction["truncated"]:
        return ""
    return f" (long review: read up to the model's limit of {model.max_length} tokens)"


PREDICTION_COLUMNS = ("predicted_rating", "predicted_age", "predicted_topic", "topic_probability", "topic_words",
                      "prediction_note")
def text_column_choices(csv_path: str | None):
    """Fill the text-column dropdown from the uploaded CSV's header, the likely review column chosen."""
    if not csv_path:
        return gr.Dropdown(choices=[], value=None)
    try:
        columns = list(read_csv_text(csv_path, nrows=0)[0].columns)
    except Exception:  # the batch run reports what is wrong with the file
        return gr.Dropdown(choices=[], value=None)
    return gr.Dropdown(choices=columns, value=guess_text_column(columns))


def keep_uploaded_prediction_columns(table: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """An upload's own columns that this app's predictions would overwrite, renamed `<name> (uploaded)`."""
    clashing = [column for column in table.columns if column in PREDICTION_COLUMNS]
    return table.rename(columns={column: f"{column} (uploaded)" for column in clashing}), clashing


def add_predictions(
    table: pd.DataFrame,
    text_column: str,
    topic_classifier: TopicClassifier | None,
    rating_age_model: RatingAgeModel | None,
    progress=None,
) -> pd.DataFrame:
    """The table with prediction columns added (empty for rows whose review is empty; `prediction_note` says why);
    `progress` (a `gr.Progress`) hears after every `PROGRESS_ROWS` reviews."""
    texts = table[text_column].astype(str).tolist()
    predicted = table.copy()

    def predict(model, what: str) -> list:
        results = []
        for start in range(0, len(texts), PROGRESS_ROWS):
            if progress is not None:
                progress((start, len(texts)), desc=what, unit="reviews")
            results += model.predict(texts[start:start + PROGRESS_ROWS])
        return results

    if rating_age_model is not None:
        ratings = predict(rating_age_model, "Rating and age")
        predicted["predicted_rating"] = pd.array([r["rating"] if r else None for r in ratings], dtype="Int64")
        predicted["predicted_age"] = [r["age"] if r else None for r in ratings]
    if topic_classifier is not None:
        topics = predict(topic_classifier, "Topics")
        predicted["predicted_topic"] = [t["topic"] if t else "" for t in topics]
        predicted["topic_probability"] = [round(t["scores"][t["topic"]], 4) if t else None for t in topics]
        if topic_classifier.topic_words_model is not None:
            words = topic_classifier.topic_words(texts, topics=[t["topic"] if t else None for t in topics])
            predicted["topic_words"] = [" ".join(w) if w else "" for w in words]
    predicted["prediction_note"] = ["empty review" if review_problem(text) else "" for text in texts]
    return predicted


def prediction_chart(predicted: pd.DataFrame, rating_names: Sequence[str], topic_labels: Sequence[str]) -> Figure:
    """Bar charts of the predicted rating distribution and the topic counts (those that were predicted)."""
    panels = [name for name in ("predicted_rating", "predicted_topic") if name in predicted]
    figure = Figure(figsize=(5 * max(len(panels), 1), 3.6), layout="constrained")
    for position, column in enumerate(panels, start=1):
        axes = figure.add_subplot(1, len(panels), position)
        if column == "predicted_rating":
            counts = [int((predicted[column] == stars).sum()) for stars in range(1, len(rating_names) + 1)]
            axes.bar(list(rating_names), counts, color="#f59e0b")
            axes.set_title("Predicted star rating")
        else:
            counts = [int((predicted[column] == label).sum()) for label in topic_labels]
            axes.barh(list(topic_labels), counts, color="#6366f1")
            axes.invert_yaxis()
            axes.set_title("Predicted topic")
        count_axis = axes.yaxis if column == "predicted_rating" else axes.xaxis
        count_axis.set_major_locator(MaxNLocator(integer=True))
        count_axis.set_label_text("reviews")
    return figure


def batch_endpoint(
    topic_classifier: TopicClassifier | None,
    rating_age_model: RatingAgeModel | None,
    output_folder: Path,
    max_rows: int,
    csv_path: str | None,
    text_column: str | None,
    progress=None,
):
    """Gradio `/batch`: the CSV with predictions added (a file to download), a chart and a message."""
    if topic_classifier is None and rating_age_model is None:
        return None, None, "⚠️ No model is loaded, so there is nothing to predict."
    if not csv_path:
        return None, None, "⚠️ Upload a CSV file first."
    try:
        table, encoding = read_reviews_csv(csv_path)
    except MalformedCsvError as error:
        return None, None, f"⚠️ Could not read the uploaded file: {error}."
    text_column = text_column or guess_text_column(list(table.columns))
    table, clashing = keep_uploaded_prediction_columns(table)
    if text_column in clashing:
        text_column = f"{text_column} (uploaded)"
    if text_column not in table.columns:
        columns = ", ".join(map(str, table.columns))
        return None, None, f"⚠️ No column `{text_column}` in the CSV; its columns: {columns}."
    if len(table) > max_rows:
        return None, None, f"⚠️ The CSV has {len(table):,} rows; this app takes at most {max_rows:,} per file."

    started = time.perf_counter()
    predicted = add_predictions(table, text_column, topic_classifier, rating_age_model, progress)
    elapsed = time.perf_counter() - started

    remove_old_files(output_folder, OUTPUT_FILE_LIFETIME_S)
    output_path = output_folder / uuid.uuid4().hex / f"{Path(csv_path).stem}_predictions.csv"
    output_path.parent.mkdir(parents=True)
    safe, neutralized = neutralize_formulas(predicted)
    safe.to_csv(output_path, index=False)

    rating_names = list(rating_age_model.config.id2label.values()) if rating_age_model else []
    chart = prediction_chart(predicted, rating_names, topic_classifier.labels if topic_classifier else [])
    empty = int((predicted["prediction_note"] != "").sum())
    message = f"Predicted {len(predicted) - empty:,} reviews from column `{text_column}` in {elapsed:.1f} s."
    if empty:
        message += f" {empty:,} empty rows were skipped (see `prediction_note`)."
    if encoding != "utf-8-sig":
        message += " The file is not UTF-8: it was read as Windows-1252 (Excel's CSV export); check its accents."
    if clashing:
        names = ", ".join(f"`{column}`" for column in clashing)
        message += f" The upload already had {names}: kept as `<name> (uploaded)`, beside this app's predictions."
    if neutralized:
        message += (f" {neutralized:,} cells starting with =, +, - or @ got a leading ' in the download, so "
                    "spreadsheets show them as text instead of running them as formulas.")
    models = {"topics": topic_classifier, "rating and age": rating_age_model}
    missing = [what for what, model in models.items() if model is None]
    if missing:
        message += f" No {' or '.join(missing)}: that model is not loaded."
    return str(output_path), chart, message


def remove_old_files(folder: Path, lifetime_s: float) -> None:
    """Delete earlier downloads; Gradio has copied each into its cache by the time it is this old."""
    now = time.time()
    for path in folder.glob("*/*.csv"):
        if now - path.stat().st_mtime > lifetime_s:
            path.unlink(missing_ok=True)
            if not any(path.parent.iterdir()):
                path.parent.rmdir()


def write_example_csv(folder: Path) -> Path:
    path = folder / "example_reviews.csv"
    pd.DataFrame(BATCH_EXAMPLE_ROWS).to_csv(path, index=False)
    return path


# ----- the UI -----


def build_demo(
    topic_classifier: TopicClassifier | None,
    rating_age_model: RatingAgeModel | None,
    topic_message: str | None = None,
    rating_age_message: str | None = None,
    max_csv_rows: int = MAX_CSV_ROWS,
) -> gr.Blocks:
    """The Blocks app; a missing model (None) comes with the message its tab shows."""
    if topic_classifier is None and not topic_message:
        topic_message = "⚠️ No topic model is loaded."
    if rating_age_model is None and not rating_age_message:
        rating_age_message = "⚠️ No rating-and-age model is loaded."
    output_folder = Path(tempfile.mkdtemp(prefix="review_app_"))  # the Batch tab's downloads
    atexit.register(shutil.rmtree, output_folder, ignore_errors=True)
    has_topic_words = topic_classifier is not None and topic_classifier.topic_words_model is not None

    def classify_topics(texts: list[str]):
        return topic_endpoint(topic_classifier, topic_message, texts)

    def predict_rating_age(texts: list[str]):
        return rating_age_endpoint(rating_age_model, rating_age_message, texts)

    def predict_csv(csv_path: str | None, text_column: str | None, progress=gr.Progress()):
        return batch_endpoint(topic_classifier, rating_age_model, output_folder, max_csv_rows, csv_path, text_column,
                              progress)

    with gr.Blocks(title="Reviews: topic, rating and age", analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        gr.Markdown(
            "# Reviews: topic, star rating and reviewer age\n"
            "Transformer models fine-tuned on real reviews: an Amazon **topic** classifier, and one encoder with two "
            "heads that predicts a clothing review's **star rating** and the **reviewer's age**."
        )
        with gr.Tab("Topic"):
            if topic_message:
                gr.Markdown(topic_message, elem_classes="model-warning")
            topic_review = gr.Textbox(label="Review", lines=4, placeholder="Paste a product review…",
                                      elem_id="topic-review", max_length=MAX_REVIEW_CHARS)
            topic_button = gr.Button("Classify topic", variant="primary", elem_id="topic-button")
            topic_scores = gr.Label(label="Category probabilities", num_top_classes=7, elem_id="topic-scores")
            topic_words = gr.Textbox(
                label="Words of the NMF topic behind the label", interactive=False, visible=has_topic_words,
                elem_id="topic-words",
            )
            topic_result = gr.Markdown(elem_id="topic-result")
            gr.Examples([[text] for text in TOPIC_EXAMPLES], inputs=topic_review, label="Real Amazon reviews")
            gr.on(
                [topic_button.click, topic_review.submit], classify_topics, inputs=topic_review,
                outputs=[topic_scores, topic_words, topic_result], api_name="topic", batch=True,
                max_batch_size=MAX_QUEUE_BATCH,
            )
        with gr.Tab("Rating & age"):
            if rating_age_message:
                gr.Markdown(rating_age_message, elem_classes="model-warning")
            rating_review = gr.Textbox(
                label="Review", lines=4, placeholder="Paste a clothing review…", elem_id="rating-review",
                max_length=MAX_REVIEW_CHARS,
            )
            rating_button = gr.Button("Predict rating and age", variant="primary", elem_id="rating-button")
            with gr.Row():
                rating_scores = gr.Label(label="Star rating", num_top_classes=5, elem_id="rating-scores")
                # A Textbox, not a Number: gr.Number shows "0" before the first prediction.
                age_years = gr.Textbox(label="Predicted age (years)", interactive=False, elem_id="age-years")
            rating_result = gr.Markdown(elem_id="rating-result")
            gr.Examples([[text] for text in RATING_AGE_EXAMPLES], inputs=rating_review, label="Real clothing reviews")
            gr.on(
                [rating_button.click, rating_review.submit], predict_rating_age, inputs=rating_review,
                outputs=[rating_scores, age_years, rating_result], api_name="rating_age", batch=True,
                max_batch_size=MAX_QUEUE_BATCH,
            )
        with gr.Tab("Batch"):
            gr.Markdown(
                f"Upload a CSV with one review per row (at most {max_csv_rows:,} rows), choose its text column, and "
                "download it back with the predictions added."
            )
            for message in (topic_message, rating_age_message):
                if message:
                    gr.Markdown(message, elem_classes="model-warning")
            with gr.Row():
                csv_file = gr.File(label="CSV file", file_types=[".csv"], elem_id="csv-file")
                text_column = gr.Dropdown(
                    label="Text column", choices=[], allow_custom_value=True, elem_id="text-column"
                )
            batch_button = gr.Button("Predict every row", variant="primary", elem_id="batch-button")
            batch_result = gr.Markdown(elem_id="batch-result")
            predictions_file = gr.File(label="CSV with predictions", interactive=False, elem_id="predictions-file")
            chart = gr.Plot(label="Predictions", elem_id="predictions-chart")
            gr.Examples(
                [[str(write_example_csv(output_folder))]], inputs=csv_file, label="Real reviews (clothing and Amazon)"
            )
            csv_file.change(text_column_choices, inputs=csv_file, outputs=text_column, api_visibility="private")
            batch_button.click(
                predict_csv, inputs=[csv_file, text_column], outputs=[predictions_file, chart, batch_result],
                api_name="batch",
            )
        gr.Markdown(served_by_footer(topic_classifier, rating_age_model), elem_id="served-by")
    return demo


def served_by_footer(topic_classifier: TopicClassifier | None, rating_age_model: RatingAgeModel | None) -> str:
    lines = [f"{what}: {model.served_by}" for what, model in (("Topic model", topic_classifier),
                                                              ("Rating-and-age model", rating_age_model)) if model]
    return "<small>Served by: " + "; ".join(lines) + ".</small>" if lines else ""


def launch(demo: gr.Blocks, host: str, port: int | None, concurrency_limit: int = 1, **launch_options):
    """Queue and serve (`prevent_thread_lock=True` in launch_options returns at once, for tests)."""
    demo.queue(max_size=QUEUE_MAX_SIZE, default_concurrency_limit=concurrency_limit)
    return demo.launch(
        server_name=host, server_port=port, share=False, max_file_size=MAX_UPLOAD_SIZE, theme=gr.themes.Soft(),
        css=CSS, **launch_options,
    )


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--topic-model", default=os.environ.get("TOPIC_MODEL", DEFAULT_TOPIC_MODEL),
        help="Topic classifier: folder or Hub repo id, optionally repo_id@revision (env TOPIC_MODEL).",
    )
    parser.add_argument(
        "--multitask-model", default=os.environ.get("MULTITASK_MODEL", DEFAULT_MULTITASK_MODEL),
        help="Rating-and-age model: folder or Hub repo id, optionally repo_id@revision (env MULTITASK_MODEL).",
    )
    parser.add_argument(
        "--trust-remote-code", action="store_true",
        help="Let transformers run code from the model repos (off: the classes `import modeling` registers are used).",
    )
    parser.add_argument(
        "--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        help="Interface to serve on (default 127.0.0.1; a Space sets GRADIO_SERVER_NAME=0.0.0.0).",
    )
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    parser.add_argument(
        "--bf16", action="store_true", default=os.environ.get("APP_BF16", "") not in ("", "0"),
        help="Run the models under bfloat16 autocast (env APP_BF16=1): faster on CPUs with AVX512-BF16/AMX and on "
        "GPUs; probabilities then differ from float32 by about 1e-4.",
    )
    parser.add_argument(
        "--backend", choices=BACKENDS, default=os.environ.get("REVIEW_BACKEND") or None,
        help=f"What runs the models (env REVIEW_BACKEND): auto (per model, the fastest that meets the agreement bars on "
        "this machine: GPU torch, an int8 export that agrees, torch bf16 on native-bf16 CPUs, ONNX float32, torch; "
        "logged and shown in the footer), torch, or the folders' onnx/ export on ONNX Runtime, float32 or int8; a "
        f"folder without onnx/ is served on torch. Default: {DEFAULT_BACKEND}, or torch with --bf16.",
    )
    parser.add_argument("--max-csv-rows", type=int, default=MAX_CSV_ROWS, help="Largest CSV the Batch tab takes.")
    parser.add_argument(
        "--concurrency-limit", type=int, default=int(os.environ.get("REVIEW_CONCURRENCY_LIMIT", 1)),
        help="Calls each endpoint runs at once (env REVIEW_CONCURRENCY_LIMIT; default 1: 2 or 4 measured no better on "
        "2 cores, benchmarks/space_load.py).",
    )
    args = parser.parse_args(argv)
    if args.backend is None:
        args.backend = TORCH if args.bf16 else DEFAULT_BACKEND
    elif args.bf16 and args.backend != TORCH:
        parser.error(f"--bf16 applies to the torch backend, not --backend {args.backend}")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    args = parse_arguments(argv)
    autocast_dtype = None
    if args.bf16:
        import torch  # only here: the ONNX backends serve without it

        autocast_dtype = torch.bfloat16
    options = {"backend": args.backend, "autocast_dtype": autocast_dtype}
    topic_classifier, topic_message = load_model_or_message(
        TopicClassifier, args.topic_model, "topic model", "--topic-model", args.trust_remote_code, **options
    )
    rating_age_model, rating_age_message = load_model_or_message(
        RatingAgeModel, args.multitask_model, "rating-and-age model", "--multitask-model", args.trust_remote_code,
        **options,
    )
    demo = build_demo(topic_classifier, rating_age_model, topic_message, rating_age_message, args.max_csv_rows)
    launch(demo, args.host, args.port, args.concurrency_limit)


if __name__ == "__main__":
    main()
