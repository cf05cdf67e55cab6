"""Batched inference for the app: a model folder's tokenizer and a backend running its model, served in
length-sorted, padding-tight batches.

`RatingAgeModel` and `TopicClassifier` answer what `pipeline(...)` answers for the same model (the same decision
rules, in numpy: a test compares them), only faster: reviews are tokenized once, sorted by length and run in batches
padded to their own longest review. A backend runs each batch (see `modeling.backends`): torch (optionally under
bfloat16 autocast) or an exported ONNX graph, float32 or int8, on ONNX Runtime. The ONNX backends need only the
tokenizer, `config.json` and the graph: they serve where torch is not installed (`python -m modeling.space FOLDER
--without_torch`).
`benchmarks/serving_speed.py` measures each against `transformers.pipeline`.
"""

import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .backends import (
    AUTO, TORCH, OnnxBackend, TorchBackend, check_backend, choose_backend, find_onnx_file, torch_installed,
)
from .hub import parse_model_reference
from .stacking_heads import StackingHeads, served_by_task, stacking_tasks

logger = logging.getLogger(__name__)

INFERENCE_BATCH_SIZE = 32  # reviews per forward pass at most
MAX_PADDING_FRACTION_CPU = 0.1  # on CPU a new forward pass is cheaper than padding a review by more than this
MAX_CHARS_PER_TOKEN = 100  # WordPiece reads a longer word as one [UNK]: no token spans more characters
UNLIKELY_MAX_LENGTH = 100_000  # a tokenizer without a real limit reports about 1e30
FALLBACK_MAX_LENGTH = 512


def serving_device() -> str:
    import torch

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


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


@dataclass(frozen=True)
class ServedConfig:
    """What serving reads from a model's `config.json`: the same for a loaded torch model and an ONNX graph."""

    name: str
    id2label: dict[int, str]
    max_position_embeddings: int | None
    rating_logit_offsets: list[float] | None = None
    problem_type: str | None = None
    stacking_heads: tuple[str, ...] = ()  # the tasks its stacking heads serve

    @classmethod
    def from_dict(cls, config: dict, name: str) -> "ServedConfig":
        encoder = config.get("encoder") or config  # the project's models keep their encoder's config in `encoder`
        return cls(name=name, id2label={int(index): label for index, label in config.get("id2label", {}).items()},
                   max_position_embeddings=encoder.get("max_position_embeddings"),
                   rating_logit_offsets=config.get("rating_logit_offsets"), problem_type=config.get("problem_type"),
                   stacking_heads=tuple(stacking_tasks(config.get("stacking_heads"))))

    @classmethod
    def from_folder(cls, repo_or_path: str, revision: str | None) -> "ServedConfig":
        from transformers import PreTrainedConfig

        config, _ = PreTrainedConfig.get_config_dict(repo_or_path, revision=revision)
        return cls.from_dict(config, repo_or_path)


class BatchedReviewModel(ABC):
    """A tokenizer and a backend running the model, served in length-sorted batches; `postprocess` turns each review's
    outputs into its result with the rule the model's pipeline applies."""

    output_names: tuple[str, ...] = ()

    def __init__(
        self,
        tokenizer,
        config: ServedConfig,
        backend,
        batch_size: int = INFERENCE_BATCH_SIZE,
        max_padding_fraction: float | None | str = "auto",
        backend_reason: str = "",
        text_pipeline=None,
    ):
        """`backend`: a `TorchBackend` or `OnnxBackend`; `text_pipeline`: the pipeline a torch model came from
        (kept for comparison; `from_pipeline` builds a model from one)."""
        self.tokenizer = tokenizer
        self.config = config
        self.backend = backend
        self.backend_reason = backend_reason
        self.pipeline = text_pipeline
        self.batch_size = batch_size
        if max_padding_fraction == "auto":
            max_padding_fraction = None if backend.device_type == "cuda" else MAX_PADDING_FRACTION_CPU
        self.max_padding_fraction = max_padding_fraction
        limits = [tokenizer.model_max_length, config.max_position_embeddings]
        self.max_length = min(limit for limit in limits if limit is not None and limit > 0)
        if self.max_length > UNLIKELY_MAX_LENGTH:
            logger.warning("%s states no input limit; truncating to %d tokens", self.name, FALLBACK_MAX_LENGTH)
            self.max_length = FALLBACK_MAX_LENGTH
        self.max_review_chars = self.max_length * MAX_CHARS_PER_TOKEN
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    @classmethod
    def from_pipeline(cls, text_pipeline, autocast_dtype=None, onnx_path: str | Path | None = None,
                      threads: int | None = None, **options):
        """Serve a loaded pipeline's model: on torch (`autocast_dtype=torch.bfloat16` runs the matrix products in
        bfloat16, much faster on CPUs with AVX512-BF16 or AMX and on GPUs), or on the ONNX graph at `onnx_path`
        (`threads`: ONNX Runtime's intra-op threads)."""
        model = text_pipeline.model.eval()
        config = ServedConfig.from_dict(model.config.to_dict(), model.config._name_or_path or type(model).__name__)
        outputs = cls.model_outputs(config)
        backend = (OnnxBackend(onnx_path, outputs, threads=threads) if onnx_path is not None
                   else TorchBackend(model, outputs, autocast_dtype=autocast_dtype))
        return cls(text_pipeline.tokenizer, config, backend, text_pipeline=text_pipeline, **options)

    @classmethod
    def load(cls, reference: str, trust_remote_code: bool = False, backend: str = TORCH, autocast_dtype=None,
             threads: int | None = None, **options):
        """A folder or Hub repo (`repo_id@revision`) on the named backend, or on the one `auto` picks. The ONNX
        backends load the tokenizer, `config.json` and the graph only; a folder without the graph is served on
        torch, with a log line."""
        check_backend(backend)
        repo_or_path, revision = parse_model_reference(reference)
        if backend == AUTO:
            choice = choose_backend(repo_or_path, revision)
            backend, options["backend_reason"] = choice.backend, f"auto: {choice.reason}"
            if choice.bf16:
                import torch

                autocast_dtype = torch.bfloat16
            logger.info("%s: backend %s%s (%s)", repo_or_path, backend, " bf16" if choice.bf16 else "",
                        options["backend_reason"])
        else:
            options.setdefault("backend_reason", f"--backend {backend}")
        onnx_path = resolve_onnx_file(repo_or_path, revision, backend)
        config = None if onnx_path is None else ServedConfig.from_folder(repo_or_path, revision)
        options.update(cls.load_extras(repo_or_path, revision, config))
        if onnx_path is None and backend != TORCH:
            if not torch_installed():
                raise ValueError(f"{repo_or_path} has no onnx/ export for the {backend} backend and torch is not "
                                 "installed: nothing can serve it (python -m modeling.export_onnx FOLDER)")
            options["backend_reason"] = f"{options['backend_reason']}, but no onnx/ export"
        if onnx_path is None:
            text_pipeline = cls.load_pipeline(repo_or_path, revision, trust_remote_code, serving_device())
            return cls.from_pipeline(text_pipeline, autocast_dtype=autocast_dtype, **options)
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(repo_or_path, revision=revision, trust_remote_code=trust_remote_code)
        return cls(tokenizer, config, OnnxBackend(onnx_path, cls.model_outputs(config), threads=threads), **options)

    @classmethod
    @abstractmethod
    def load_pipeline(cls, repo_or_path: str, revision: str | None, trust_remote_code: bool, device: str):
        """The model's pipeline, for the torch backend."""

    @classmethod
    def model_outputs(cls, config: ServedConfig) -> tuple[str, ...]:
        """The model outputs `postprocess` reads, for a model with this config."""
        return cls.output_names

    @classmethod
    def load_extras(cls, repo_or_path: str, revision: str | None, onnx_config: ServedConfig | None) -> dict:
        """Constructor arguments a subclass loads from the folder besides the model. `onnx_config`: the folder's
        config where an ONNX graph serves it; None where torch serves it through its pipeline, which may load some of
        them itself."""
        return {}

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def served_by(self) -> str:
        """What runs the model and why, e.g. "torch bf16 (auto: this CPU computes bf16 natively (amx_bf16))"."""
        return f"{self.backend.description} ({self.backend_reason})" if self.backend_reason else self.backend.description

    def clip_review(self, text: str) -> str:
        """Cut a huge review (say 1 MB) to a length that still holds `max_length` tokens, so tokenizing it is cheap."""
        if len(text) <= self.max_review_chars:
            return text
        return " ".join(text[: self.max_review_chars * 4].split())[: self.max_review_chars]

    def run(self, texts: Sequence[str]) -> list[tuple[dict[str, np.ndarray], bool]]:
        """For each review: the model outputs named in `model_outputs(config)` (numpy, batch dimension 1), and whether
        the review was truncated. Every text must be a non-empty string."""
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

    def pad(self, sequences: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        longest = max(len(ids) for ids in sequences)
        input_ids = np.full((len(sequences), longest), self.pad_token_id, dtype=np.int64)
        attention_mask = np.zeros((len(sequences), longest), dtype=np.int64)
        left = self.tokenizer.padding_side == "left"
        for row, ids in enumerate(sequences):
            span = slice(longest - len(ids), longest) if left else slice(0, len(ids))
            input_ids[row, span] = ids
            attention_mask[row, span] = 1
        return input_ids, attention_mask

    def predict(self, texts: Sequence[str]) -> list[dict | None]:
        """One result per review (see subclasses); None for an empty review, which is not run."""
        valid = [index for index, text in enumerate(texts) if is_scorable(text)]
        results: list[dict | None] = [None] * len(texts)
        for index, (outputs, truncated) in zip(valid, self.run([texts[index] for index in valid])):
            results[index] = {**self.postprocess(outputs, texts[index]), "truncated": truncated}
        return results

    @property
    def labels(self) -> list[str]:
        return [self.config.id2label[index] for index in sorted(self.config.id2label)]

    @abstractmethod
    def postprocess(self, outputs: dict[str, np.ndarray], text: str) -> dict:
        """One review's result from its model outputs and its text."""


class RatingAgeModel(BatchedReviewModel):
    """Star rating and reviewer age:
    `{"rating": 5, "rating_scores": {"1 star": ..., "5 stars": ...}, "age": 41.3, "truncated": False}`."""

    output_names = ("rating_logits", "age")

    def __init__(self, *arguments, stacking_heads: StackingHeads | None = None, **options):
        super().__init__(*arguments, **options)
        self.stacking_heads = stacking_heads or getattr(self.pipeline, "stacking_heads", None)
        if self.config.stacking_heads and self.stacking_heads is None:
            raise ValueError(f"{self.name} is served by stacking heads (config.stacking_heads) but none were loaded")

    @classmethod
    def model_outputs(cls, config):
        """The stacking heads read the review vector too: a graph exported without it (before they existed) still
        serves a model without them."""
        return (*cls.output_names, "review_vector") if config.stacking_heads else cls.output_names

    @classmethod
    def load_pipeline(cls, repo_or_path, revision, trust_remote_code, device):
        from . import load_rating_age_pipeline

        return load_rating_age_pipeline(repo_or_path, revision=revision, trust_remote_code=trust_remote_code,
                                        device=device)

    @classmethod
    def load_extras(cls, repo_or_path, revision, onnx_config) -> dict:
        """The stacking heads, for ONNX; on torch the pipeline loads them."""
        if onnx_config is None or not onnx_config.stacking_heads:
            return {}
        return {"stacking_heads": StackingHeads.load(repo_or_path, revision)}

    def postprocess(self, outputs: dict[str, np.ndarray], text: str) -> dict:
        """`ReviewRatingAgePipeline.postprocess`: the model's heads, or its stacking heads for the tasks they serve
        (`config.stacking_heads`), the rating decided with the config's logit offsets when it has them, the scores the
        served logits' probabilities."""
        served = (outputs["rating_logits"], outputs["age"])
        if self.stacking_heads is not None:
            served = served_by_task(self.config.stacking_heads, served,
                                    self.stacking_heads.predict([text], outputs["review_vector"]))
        logits, ages = served
        logits = logits[0].astype(np.float32)
        offsets = self.config.rating_logit_offsets
        best = int((logits + np.asarray(offsets, dtype=np.float32) if offsets else logits).argmax())
        return {
            "rating": best + 1,
            "rating_scores": {self.config.id2label[index]: float(p) for index, p in enumerate(softmax(logits))},
            "age": round(float(ages[0]), 1),
        }


class TopicClassifier(BatchedReviewModel):
    """Category probabilities: `{"scores": {"books": 0.9, ...}, "topic": "books", "truncated": False}`, plus the
    words of each review's NMF topic when the model folder carries a `topic_model/` (see `topic_words`)."""

    output_names = ("logits",)

    def __init__(self, *arguments, topic_words_model=None, **options):
        super().__init__(*arguments, **options)
        self.topic_words_model = topic_words_model
        if self.config.problem_type in ("multi_label_classification", "regression") or len(self.config.id2label) < 2:
            raise ValueError(f"{self.name} is not a single-label classifier (problem_type "
                             f"{self.config.problem_type!r}, {len(self.config.id2label)} labels)")

    @classmethod
    def load_pipeline(cls, repo_or_path, revision, trust_remote_code, device):
        from transformers import pipeline

        return pipeline("text-classification", model=repo_or_path, revision=revision,
                        trust_remote_code=trust_remote_code, device=device)

    @classmethod
    def load_extras(cls, repo_or_path, revision, onnx_config) -> dict:
        return {"topic_words_model": load_topic_words_model(repo_or_path, revision)}

    def postprocess(self, outputs: dict[str, np.ndarray], text: str) -> dict:
        """The text-classification pipeline's `top_k=None` answer for a single-label classifier: softmax scores."""
        scores = softmax(outputs["logits"][0].astype(np.float32))
        ranked = sorted(zip(self.labels, scores.tolist()), key=lambda item: -item[1])
        return {"scores": dict(ranked), "topic": ranked[0][0]}

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
