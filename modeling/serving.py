"""Batched inference for the app: a loaded pipeline's model served in length-sorted, padding-tight batches.

`RatingAgeModel` and `TopicClassifier` answer exactly what `pipeline(...)` answers for the same model (the
pipeline's own `postprocess` makes each result), only faster: reviews are tokenized once, sorted by length and run
in batches padded to their own longest review. A backend runs each batch (see `modeling.backends`): torch (optionally
under bfloat16 autocast) or an exported ONNX graph, float32 or int8, on ONNX Runtime. `benchmarks/serving_speed.py`
measures each against `transformers.pipeline`.
"""

import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import pipeline

from . import load_rating_age_pipeline
from .backends import AUTO, TORCH, OnnxBackend, TorchBackend, check_backend, choose_backend, find_onnx_file
from .configuration_topic_features import OTHER_TOPIC  # noqa: F401 - the app and its tests read it from here
from .hub import parse_model_reference
from .pipeline_multitask import model_max_length

logger = logging.getLogger(__name__)

INFERENCE_BATCH_SIZE = 32  # reviews per forward pass at most
MAX_PADDING_FRACTION_CPU = 0.1  # on CPU a new forward pass is cheaper than padding a review by more than this
MAX_CHARS_PER_TOKEN = 100  # WordPiece reads a longer word as one [UNK]: no token spans more characters
UNLIKELY_MAX_LENGTH = 100_000  # a tokenizer without a real limit reports about 1e30
FALLBACK_MAX_LENGTH = 512


def serving_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def is_scorable(text) -> bool:
    """A review the model can score: a string with something besides whitespace."""
    return isinstance(text, str) and bool(text.strip())


def length_sorted_chunks(
    lengths: Sequence[int], max_batch_size: int, max_padding_fraction: float | None
) -> list[list[int]]:
    """Indices of the reviews grouped into forward passes, longest first, at most `max_batch_size` each.

    With `max_padding_fraction`, a review shorter than `(1 - fraction)` of its group's longest starts a new group,
    so little compute goes to padding (on CPU, cost grows with the padded tokens; on GPU, fewer passes matter more).
    """
    order = sorted(range(len(lengths)), key=lengths.__getitem__, reverse=True)
    chunks: list[list[int]] = []
    current: list[int] = []
    for index in order:
        if current and (
            len(current) == max_batch_size
            or (max_padding_fraction is not None and lengths[index] < (1 - max_padding_fraction) * lengths[current[0]])
        ):
            chunks.append(current)
            current = []
        current.append(index)
    if current:
        chunks.append(current)
    return chunks


class BatchedReviewModel(ABC):
    """A loaded pipeline's tokenizer and a backend running its model, served in length-sorted batches.

    The pipeline's own `postprocess` turns each review's outputs into its result, so the app answers exactly
    what `pipeline(...)` answers for the same model (on the ONNX backends, to their rounding)."""

    output_names: tuple[str, ...] = ()

    def __init__(
        self,
        text_pipeline,
        batch_size: int = INFERENCE_BATCH_SIZE,
        max_padding_fraction: float | None | str = "auto",
        autocast_dtype: torch.dtype | None = None,
        onnx_path: str | Path | None = None,
        threads: int | None = None,
        backend_reason: str = "",
    ):
        """`autocast_dtype=torch.bfloat16` runs the matrix products in bfloat16 (much faster on CPUs with AVX512-BF16
        or AMX, and on GPUs); without it the outputs are the pipeline's, to float rounding. `onnx_path` runs an
        exported graph on ONNX Runtime instead of the torch model (`threads`: its intra-op threads)."""
        self.pipeline = text_pipeline
        self.backend_reason = backend_reason
        self.model = text_pipeline.model.eval()
        self.tokenizer = text_pipeline.tokenizer
        self.batch_size = batch_size
        if onnx_path is not None:
            self.backend = OnnxBackend(onnx_path, self.output_names, threads=threads)
        else:
            self.backend = TorchBackend(self.model, self.output_names, autocast_dtype=autocast_dtype)
        if max_padding_fraction == "auto":
            max_padding_fraction = None if self.backend.device.type == "cuda" else MAX_PADDING_FRACTION_CPU
        self.max_padding_fraction = max_padding_fraction
        self.max_length = model_max_length(self.tokenizer, self.model)
        if self.max_length > UNLIKELY_MAX_LENGTH:
            logger.warning("%s states no input limit; truncating to %d tokens", self.name, FALLBACK_MAX_LENGTH)
            self.max_length = FALLBACK_MAX_LENGTH
        self.max_review_chars = self.max_length * MAX_CHARS_PER_TOKEN
        self.pad_token_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0

    @property
    def name(self) -> str:
        return getattr(self.model.config, "_name_or_path", "") or type(self.model).__name__

    @property
    def served_by(self) -> str:
        """What runs the model and why, e.g. "torch bf16 (auto: this CPU computes bf16 natively (amx_bf16))"."""
        return f"{self.backend.description} ({self.backend_reason})" if self.backend_reason else self.backend.description

    def clip_review(self, text: str) -> str:
        """Cut a huge review (say 1 MB) to a length that still holds `max_length` tokens, so tokenizing it is cheap."""
        if len(text) <= self.max_review_chars:
            return text
        return " ".join(text[: self.max_review_chars * 4].split())[: self.max_review_chars]

    def run(self, texts: Sequence[str]) -> list[tuple[dict[str, torch.Tensor], bool]]:
        """For each review: the model outputs named in `output_names` (batch dimension 1, on CPU), and whether the
        review was truncated. Every text must be a non-empty string."""
        if not texts:
            return []
        encoded = self.tokenizer(
            [self.clip_review(text) for text in texts], truncation=True, max_length=self.max_length,
            return_attention_mask=False, return_token_type_ids=False,
        )["input_ids"]
        lengths = [len(ids) for ids in encoded]
        results: list = [None] * len(texts)
        for chunk in length_sorted_chunks(lengths, self.batch_size, self.max_padding_fraction):
            chunk_outputs = self.backend(*self.pad([encoded[index] for index in chunk]))
            for row, index in enumerate(chunk):
                row_outputs = {name: values[row : row + 1] for name, values in chunk_outputs.items()}
                results[index] = (row_outputs, lengths[index] >= self.max_length)
        return results

    def pad(self, sequences: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        longest = max(len(ids) for ids in sequences)
        input_ids = torch.full((len(sequences), longest), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(sequences), longest), dtype=torch.long)
        left = self.tokenizer.padding_side == "left"
        for row, ids in enumerate(sequences):
            span = slice(longest - len(ids), longest) if left else slice(0, len(ids))
            input_ids[row, span] = torch.tensor(ids, dtype=torch.long)
            attention_mask[row, span] = 1
        return input_ids, attention_mask

    def predict(self, texts: Sequence[str]) -> list[dict | None]:
        """One result per review (see subclasses); None for an empty review, which is not run."""
        valid = [index for index, text in enumerate(texts) if is_scorable(text)]
        results: list[dict | None] = [None] * len(texts)
        for index, (outputs, truncated) in zip(valid, self.run([texts[index] for index in valid])):
            results[index] = {**self.postprocess(outputs), "truncated": truncated}
        return results

    @abstractmethod
    def postprocess(self, outputs: dict[str, torch.Tensor]) -> dict:
        """One review's result from its model outputs."""


class RatingAgeModel(BatchedReviewModel):
    """Star rating and reviewer age:
    `{"rating": 5, "rating_scores": {"1 star": ..., "5 stars": ...}, "age": 41.3, "truncated": False}`."""

    output_names = ("rating_logits", "age")

    @classmethod
    def load(cls, reference: str, trust_remote_code: bool = False, backend: str = TORCH, **options) -> "RatingAgeModel":
        repo_or_path, revision = parse_model_reference(reference)
        onnx_path, options = served_backend(repo_or_path, revision, backend, options)
        text_pipeline = load_rating_age_pipeline(
            repo_or_path, revision=revision, trust_remote_code=trust_remote_code,
            device="cpu" if onnx_path else serving_device(),
        )
        return cls(text_pipeline, onnx_path=onnx_path, **options)

    def postprocess(self, outputs: dict[str, torch.Tensor]) -> dict:
        return self.pipeline.postprocess(outputs)


class TopicClassifier(BatchedReviewModel):
    """Category probabilities: `{"scores": {"books": 0.9, ...}, "topic": "books", "truncated": False}`, plus the
    words of each review's NMF topic when the model folder carries a `topic_model/` (see `topic_words`)."""

    output_names = ("logits",)

    def __init__(self, text_pipeline, topic_words_model=None, **options):
        super().__init__(text_pipeline, **options)
        self.topic_words_model = topic_words_model

    @classmethod
    def load(cls, reference: str, trust_remote_code: bool = False, backend: str = TORCH, **options) -> "TopicClassifier":
        repo_or_path, revision = parse_model_reference(reference)
        onnx_path, options = served_backend(repo_or_path, revision, backend, options)
        text_pipeline = pipeline(
            "text-classification", model=repo_or_path, revision=revision, trust_remote_code=trust_remote_code,
            device="cpu" if onnx_path else serving_device(),
        )
        return cls(
            text_pipeline, topic_words_model=load_topic_words_model(repo_or_path, revision), onnx_path=onnx_path,
            **options,
        )

    @property
    def labels(self) -> list[str]:
        id2label = self.model.config.id2label
        return [id2label[index] for index in sorted(id2label)]

    def postprocess(self, outputs: dict[str, torch.Tensor]) -> dict:
        ranked = self.pipeline.postprocess(outputs, top_k=None, _legacy=False)
        return {"scores": {item["label"]: item["score"] for item in ranked}, "topic": ranked[0]["label"]}

    def topic_words(self, texts: Sequence[str], n: int = 8, topics: Sequence[str | None] | None = None
                    ) -> list[list[str] | None]:
        """Words of the NMF topic behind each review's label (None for an empty review or without a topic model).

        `topics` are the labels shown (the classifier's); the words are those of the topic that gives that label the
        most weight in the review's topic mixture, the same rule the labeller decided by. For `other` they are the
        review's dominant topic's words, and [] when no topic word occurs in it. Without `topics`, the topic model's
        own decision is used."""
        if self.topic_words_model is None:
            return [None] * len(texts)
        valid = [index for index, text in enumerate(texts) if is_scorable(text)]
        words: list[list[str] | None] = [None] * len(texts)
        if valid:
            clipped = [self.clip_review(texts[index]) for index in valid]
            labels = ([topics[index] for index in valid] if topics is not None
                      else self.topic_words_model.decide(clipped).categories)
            for index, review_words in zip(valid, self.topic_words_model.decision_words(clipped, labels, n=n)):
                words[index] = list(review_words)
        return words


def served_backend(repo_or_path: str, revision: str | None, backend: str, options: dict) -> tuple[Path | None, dict]:
    """The ONNX file a `backend` value runs (None: torch) and the model's options with the autocast dtype and the
    reason for the choice filled in; `auto` asks `choose_backend` (logged)."""
    check_backend(backend)
    if backend == AUTO:
        choice = choose_backend(repo_or_path, revision)
        backend, reason = choice.backend, f"auto: {choice.reason}"
        options = {**options, "autocast_dtype": choice.autocast_dtype}
        logger.info("%s: backend %s%s (%s)", repo_or_path, backend, " bf16" if choice.autocast_dtype else "", reason)
    else:
        reason = f"--backend {backend}"
    return resolve_onnx_file(repo_or_path, revision, backend), {**options, "backend_reason": reason}


def resolve_onnx_file(repo_or_path: str, revision: str | None, backend: str) -> Path | None:
    """The exported graph an ONNX backend runs; None for torch, and for a folder without it (logged: torch serves)."""
    if backend == TORCH:
        return None
    path = find_onnx_file(repo_or_path, revision, backend)
    if path is None:
        logger.warning(
            "%s has no onnx/ export for the %s backend (run `python -m modeling.export_onnx FOLDER`): serving on torch",
            repo_or_path, backend,
        )
    return path


def load_topic_words_model(repo_or_path: str, revision: str | None):
    """The NMF topic model saved in the folder's `topic_model/`, or None when there is none (or it fails to load)."""
    try:
        folder = Path(repo_or_path)
        if not folder.is_dir():
            from huggingface_hub import snapshot_download

            folder = Path(snapshot_download(repo_or_path, revision=revision, allow_patterns=["topic_model/*"]))
        if not (folder / "topic_model").is_dir():
            return None
        from data_prep.topic_model import TopicModel  # only needed, and only importable, where topic words exist

        return TopicModel.load(folder / "topic_model")
    except Exception as error:  # topic words are an extra: the classifier serves without them
        logger.warning("No NMF topic words for %s: %s: %s", repo_or_path, type(error).__name__, error)
        return None
