"""Stacking heads: a linear rating classifier and a linear age regressor on TF-IDF features of the review beside the
fine-tuned encoder's review vector. Fitted by `modeling.baselines.fit_stacking_heads` (scikit-learn), saved as arrays
(safetensors) and a vocabulary (JSON), no pickle, and applied here with numpy alone.

This file travels with saved and pushed models (the config and the pipeline import it): it imports only numpy,
safetensors and transformers.
"""

import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

WEIGHTS_NAME, VOCABULARY_NAME = "stacking_heads.safetensors", "stacking_heads.json"
# The tasks, in the order of the model's outputs (rating logits, age): a config's `stacking_heads` lists those the
# stacking heads serve.
STACKING_TASKS = ("rating", "age")


def stacking_tasks(setting) -> list[str]:
    """The tasks a config's `stacking_heads` names: its list; true (folders saved before the choice was made per task)
    every task; false or None none."""
    if setting is None or isinstance(setting, bool):
        return list(STACKING_TASKS) if setting else []
    unknown = sorted(set(setting) - set(STACKING_TASKS))
    if unknown:
        raise ValueError(f"stacking_heads lists unknown task(s) {unknown}; the tasks are {list(STACKING_TASKS)}")
    return list(setting)


def served_by_task(tasks, own: tuple, stacked: tuple) -> tuple:
    """(rating logits, ages) served: the stacking heads' (`stacked`) for the tasks in `tasks`, the model's own for the
    others. numpy arrays or torch tensors alike."""
    return tuple(stacked_output if task in tasks else own_output
                 for task, own_output, stacked_output in zip(STACKING_TASKS, own, stacked))


@dataclass
class StackingHeads:
    """`vocabulary[i]` is the term of TF-IDF column i; the review vector's columns follow the vocabulary's, standardized
    with `vector_mean` / `vector_std` and scaled by `vector_scale`. `rating_weights` is (classes, columns)."""

    vocabulary: list[str]
    idf: np.ndarray
    vector_mean: np.ndarray
    vector_std: np.ndarray
    vector_scale: float
    rating_weights: np.ndarray
    rating_bias: np.ndarray
    age_weights: np.ndarray
    age_bias: float
    ngram_range: tuple[int, int] = (1, 2)
    token_pattern: str = r"(?u)\b\w\w+\b"
    settings: dict | None = None  # how they were fitted (C, alpha), for the model card

    def __post_init__(self):
        self.columns = {term: index for index, term in enumerate(self.vocabulary)}
        self.tokens = re.compile(self.token_pattern)

    def term_weights(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """(columns, values) of the review's TF-IDF row: lowercased word n-grams, sublinear term frequency times idf,
        L2-normalized (scikit-learn's TfidfVectorizer(sublinear_tf=True) with this vocabulary)."""
        words = self.tokens.findall(text.lower())
        low, high = self.ngram_range
        counts = Counter(" ".join(words[start:start + n]) for n in range(low, high + 1)
                         for start in range(len(words) - n + 1))
        found = [(self.columns[term], count) for term, count in counts.items() if term in self.columns]
        if not found:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
        columns = np.array([column for column, _ in found])
        values = (1.0 + np.log([count for _, count in found])) * self.idf[columns]
        return columns, values / np.linalg.norm(values)

    def lexical_scores(self, text: str) -> np.ndarray:
        """The TF-IDF part of one review's scores: (rating logits..., age), classes + 1 values."""
        columns, values = self.term_weights(text)
        return np.append(self.rating_weights[:, columns] @ values, self.age_weights[columns] @ values)

    def vector_scores(self, review_vectors: np.ndarray) -> np.ndarray:
        """The review vectors' part of the scores, biases included: (reviews, classes + 1)."""
        vectors = (np.asarray(review_vectors, dtype=np.float64) - self.vector_mean) / self.vector_std * self.vector_scale
        width = len(self.vocabulary)
        return np.column_stack([vectors @ self.rating_weights[:, width:].T + self.rating_bias,
                                vectors @ self.age_weights[width:] + self.age_bias])

    def predict(self, texts: list[str], review_vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(rating logits (reviews, classes), ages in years (reviews,)) of the reviews and their encoder vectors."""
        scores = self.vector_scores(review_vectors) + np.stack([self.lexical_scores(text) for text in texts])
        return scores[:, :-1], scores[:, -1]

    def save(self, folder: str | Path) -> None:
        from safetensors.numpy import save_file

        arrays = {name: np.ascontiguousarray(getattr(self, name), dtype=np.float32) for name in (
            "idf", "vector_mean", "vector_std", "rating_weights", "rating_bias", "age_weights")}
        save_file(arrays, str(Path(folder) / WEIGHTS_NAME))
        (Path(folder) / VOCABULARY_NAME).write_text(json.dumps({
            "vocabulary": self.vocabulary, "vector_scale": self.vector_scale, "age_bias": self.age_bias,
            "ngram_range": list(self.ngram_range), "token_pattern": self.token_pattern, "settings": self.settings}))

    @classmethod
    def load(cls, repo_or_path: str, revision: str | None = None) -> "StackingHeads":
        """From a model folder or Hub repo that has them."""
        from safetensors.numpy import load_file
        from transformers.utils import cached_file

        def path(name: str) -> str:
            return cached_file(repo_or_path, name, revision=revision)

        arrays = {name: array.astype(np.float64) for name, array in load_file(path(WEIGHTS_NAME)).items()}
        described = json.loads(Path(path(VOCABULARY_NAME)).read_text())
        return cls(vocabulary=described["vocabulary"], vector_scale=described["vector_scale"],
                   age_bias=described["age_bias"], ngram_range=tuple(described["ngram_range"]),
                   token_pattern=described["token_pattern"], settings=described.get("settings"), **arrays)
