"""Linear baselines for review tasks, to measure what a transformer adds over lexical features: TF-IDF features, a
LogisticRegression or Ridge whose strength is chosen on a validation split, and the stacking features (TF-IDF beside
a fine-tuned multi-task model's review vectors).

Used by the benchmarks; neither the training scripts nor `import modeling` load it (scikit-learn is enough here).
"""

from pathlib import Path

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression, Ridge

C_VALUES, ALPHA_VALUES = (0.5, 1.0, 2.0, 4.0, 8.0), (0.3, 1.0, 3.0, 10.0)


def tfidf_features(train_texts: list[str], *other_texts: list[str]) -> list:
    """TF-IDF of words and word pairs (sublinear tf, terms of at least two training texts) fitted on `train_texts`:
    the matrix of the training texts, then one per further list of texts."""
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    return [vectorizer.fit_transform(train_texts), *(vectorizer.transform(texts) for texts in other_texts)]


def best_on_validation(make_model, values, features: dict, targets: dict, score) -> tuple:
    """(model, value): of one model per value fitted on features["train"], the one whose validation predictions get
    the highest `score(truth, predicted)` (the first on a tie)."""
    fitted = [make_model(value).fit(features["train"], targets["train"]) for value in values]
    scores = [score(targets["validation"], model.predict(features["validation"])) for model in fitted]
    return fitted[int(np.argmax(scores))], values[int(np.argmax(scores))]


def rating_classifier(features: dict, ratings: dict, c_values=C_VALUES) -> tuple:
    """LogisticRegression with C chosen by validation accuracy; features and ratings per split (train, validation)."""
    return best_on_validation(lambda c: LogisticRegression(C=c, max_iter=3000), c_values, features, ratings,
                              lambda truth, predicted: float(np.mean(predicted == truth)))


def age_regressor(features: dict, ages: dict, alpha_values=ALPHA_VALUES) -> tuple:
    """Ridge with alpha chosen by validation mean absolute error."""
    return best_on_validation(lambda alpha: Ridge(alpha=alpha), alpha_values, features, ages,
                              lambda truth, predicted: -float(np.abs(predicted - truth).mean()))


def review_vectors(model_dir: str | Path, texts_by_split: dict[str, list[str]], batch_size: int = 64) -> dict:
    """A saved multi-task model's pooled review vectors (what its heads read), per split in the order of its texts."""
    import torch
    from transformers import AutoTokenizer

    from modeling import MultiTaskReviewModel
    from modeling.encoders import pool_hidden_states

    model = MultiTaskReviewModel.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    vectors_by_split = {}
    for split, texts in texts_by_split.items():
        order = np.argsort([len(text) for text in texts])
        vectors = np.zeros((len(texts), model.config.encoder.hidden_size), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                rows = order[start:start + batch_size]
                batch = tokenizer([texts[row] for row in rows], truncation=True, padding=True, return_tensors="pt",
                                  return_token_type_ids=False)
                hidden = model.encoder(**batch).last_hidden_state
                vectors[rows] = pool_hidden_states(hidden, batch["attention_mask"], model.config.pooling).numpy()
        vectors_by_split[split] = vectors
    return vectors_by_split


def stacked_features(lexical: dict, vectors: dict) -> dict:
    """Per split, the TF-IDF rows beside the review vectors, standardized on the training split and scaled to rows of
    about unit norm, like the TF-IDF rows beside them."""
    mean, std = vectors["train"].mean(axis=0), vectors["train"].std(axis=0) + 1e-6
    scale = 1.0 / np.sqrt(vectors["train"].shape[1])
    return {split: sparse.hstack([lexical[split], sparse.csr_matrix((vectors[split] - mean) / std * scale)]).tocsr()
            for split in lexical}
