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


@pytest.fixture(scope="session")
def serve_app():
    """Launches a Gradio demo in-process on a free loopback port and returns its URL."""
    import app

    def serve(demo) -> str:
        port = free_port()
        app.launch(demo, "127.0.0.1", port, prevent_thread_lock=True, quiet=True)
        return f"http://127.0.0.1:{port}/"

    return serve
