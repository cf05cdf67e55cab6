"""Text helpers shared by the clothing and Amazon data: light normalization for transformers, and the bag-of-words
cleaning the topic model reads."""

import html
import re

from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

_WHITESPACE = re.compile(r"\s+")
_HTML_LINE_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
_SENTENCE_END = (".", "!", "?", ":", ";", "…")


def normalize_text(text: str | None) -> str:
    """HTML entities unescaped, `<br>` tags turned into spaces, whitespace collapsed; nothing else changes,
    so a tokenizer still sees natural text."""
    if not text:
        return ""
    text = _HTML_LINE_BREAK.sub(" ", html.unescape(text))
    return _WHITESPACE.sub(" ", text).strip()


def join_title_and_body(title: str | None, body: str | None) -> str:
    """`"Great dress. Fits well"`: the title reads as the review's first sentence."""
    title, body = normalize_text(title), normalize_text(body)
    if not title:
        return body
    if not body:
        return title
    separator = " " if title.endswith(_SENTENCE_END) else ". "
    return f"{title}{separator}{body}"


_HTML_TAG = re.compile(r"<[^>]+>")
_URL = re.compile(r"(?:https?://|www\.)\S+")  # applied to lower-cased text
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "`": "'", "\u00b4": "'"})
_WHOLE_CONTRACTIONS = {
    "won't": "will not", "can't": "can not", "shan't": "shall not", "ain't": "is not", "let's": "let us",
    "y'all": "you all", "ma'am": "madam", "o'clock": "of the clock",
}
_IS_CONTRACTION_WORDS = "it|that|what|there|here|he|she|who|where|how|this|everything|nothing"
_SUFFIX_CONTRACTIONS = {"n't": " not", "'re": " are", "'m": " am", "'ll": " will", "'ve": " have", "'d": " would",
                        "'s": ""}  # the 's left after the "is" words are possessives: "amazon's" -> "amazon"
_CONTRACTION = re.compile(
    r"\b(?P<whole>" + "|".join(map(re.escape, _WHOLE_CONTRACTIONS)) + r")\b"
    r"|\b(?P<is_word>" + _IS_CONTRACTION_WORDS + r")'s\b"
    r"|(?P<suffix>n't|'re|'m|'ll|'ve|'d|'s)\b"
)
_LETTER_WORD = re.compile(r"[^\W\d_]{2,}")  # two or more letters: digits, "_" and punctuation separate words
STOP_WORDS = frozenset(ENGLISH_STOP_WORDS)


def _expand_contraction(match: re.Match) -> str:
    if match.group("whole"):
        return _WHOLE_CONTRACTIONS[match.group("whole")]
    if match.group("is_word"):
        return f"{match.group('is_word')} is"
    return _SUFFIX_CONTRACTIONS[match.group("suffix")]


def expand_contractions(text: str) -> str:
    """Lower-case text with straight apostrophes: "didn't" -> "did not", "it's" -> "it is", "amazon's" -> "amazon".
    Must run before punctuation is stripped, or the apostrophes it needs are gone."""
    return _CONTRACTION.sub(_expand_contraction, text) if "'" in text else text


def clean_for_topics(text: str | None) -> str:
    """Bag-of-words text for TF-IDF/NMF: HTML and URLs removed, lower-cased, contractions expanded, punctuation and
    digits stripped, stop words and one-letter words removed."""
    if not text:
        return ""
    text = html.unescape(text)
    if "<" in text:
        text = _HTML_TAG.sub(" ", text)
    text = text.lower().translate(_APOSTROPHES)
    if "http" in text or "www." in text:
        text = _URL.sub(" ", text)
    words = _LETTER_WORD.findall(expand_contractions(text))
    return " ".join(word for word in words if word not in STOP_WORDS)
