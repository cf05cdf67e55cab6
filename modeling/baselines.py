"""Linear models on lexical features: TF-IDF features, a LogisticRegression or Ridge whose strength is chosen on a
validation split (the benchmarks' baselines, to measure what a transformer adds), and the stacking heads that
train_multitask.py fits (TF-IDF beside a fine-tuned multi-task model's review vectors, `StackingHeads`).

`import modeling` does not load it: scikit-learn fits here, and what is served applies the fitted arrays with numpy.
"""


import logging

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression, Ridge

from .stacking_heads import StackingHeads

C_VALUES, ALPHA_VALUES = (0.5, 1.0, 2.0, 4.0, 8.0), (0.3, 1.0, 3.0, 10.0)
STACKING_C_VALUES = (1.0, 4.0, 16.0)
UNSEEN_CLASS_BIAS = -1e4  # the logit of a rating no training review has: never chosen, probability 0

logger = logging.getLogger(__name__)


def tfidf_vectorizer() -> TfidfVectorizer:
    """TF-IDF of words and word pairs (sublinear tf, terms of at least two training texts)."""
    return TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)


def tfidf_features(train_texts: list[str], *other_texts: list[str]) -> list:
    """`tfidf_vectorizer` fitted on `train_texts`: the matrix of the training texts, then one per further list."""
    vectorizer = tfidf_vectorizer()
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


def stacking_columns(vectors: dict) -> tuple[np.ndarray, np.ndarray, float]:
    """(mean, std, scale) that put review vectors beside TF-IDF rows: standardized on the training split and scaled to
    rows of about unit norm, like the TF-IDF rows."""
    return vectors["train"].mean(axis=0), vectors["train"].std(axis=0) + 1e-6, 1.0 / np.sqrt(vectors["train"].shape[1])


def stacked_features(lexical: dict, vectors: dict) -> dict:
    """Per split, the TF-IDF rows beside the standardized, scaled review vectors (`stacking_columns`)."""
    mean, std, scale = stacking_columns(vectors)
    return {split: sparse.hstack([lexical[split], sparse.csr_matrix((vectors[split] - mean) / std * scale)]).tocsr()
            for split in lexical}


def class_rows(classifier: LogisticRegression, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(weights (num_classes, columns), biases): the fitted classifier's logits in class-id order, whatever ids its
    training labels held. A class no training label has gets UNSEEN_CLASS_BIAS (logged); with two classes
    scikit-learn fits one row, the logit of the second against the first, and the first gets zeros."""
    classes = classifier.classes_
    coef, intercept = classifier.coef_, classifier.intercept_
    if len(classes) == 2:
        coef, intercept = np.vstack([np.zeros_like(coef), coef]), np.append(0.0, intercept)
    weights, biases = np.zeros((num_classes, coef.shape[1])), np.full(num_classes, UNSEEN_CLASS_BIAS)
    weights[classes], biases[classes] = coef, intercept
    if missing := sorted(set(range(num_classes)) - set(classes.tolist())):
        logger.warning("No training review has rating class(es) %s: the stacking heads never give them", missing)
    return weights, biases


def fit_stacking_heads(texts: dict, vectors: dict, ratings: dict, ages: dict, num_classes: int,
                       c_values=STACKING_C_VALUES) -> StackingHeads:
    """One LogisticRegression (rating, class ids 0..num_classes-1) and one Ridge (age) on TF-IDF features beside a
    fine-tuned encoder's review vectors, per split (train, validation). The encoder has seen the training reviews'
    labels, so its training vectors fit better than new ones: C and alpha are chosen on validation, as for TF-IDF
    alone."""
    vectorizer = tfidf_vectorizer()
    lexical = {"train": vectorizer.fit_transform(texts["train"]), "validation": vectorizer.transform(texts["validation"])}
    features = stacked_features(lexical, vectors)
    classifier, c = rating_classifier(features, ratings, c_values)
    regressor, alpha = age_regressor(features, ages)
    mean, std, scale = stacking_columns(vectors)
    rating_weights, rating_bias = class_rows(classifier, num_classes)
    return StackingHeads(
        vocabulary=sorted(vectorizer.vocabulary_, key=vectorizer.vocabulary_.get), idf=vectorizer.idf_,
        vector_mean=mean, vector_std=std, vector_scale=scale, rating_weights=rating_weights,
        rating_bias=rating_bias, age_weights=regressor.coef_, age_bias=float(regressor.intercept_),
        ngram_range=vectorizer.ngram_range, token_pattern=vectorizer.token_pattern,
        settings={"C": c, "alpha": alpha, "training_reviews": len(texts["train"])})
