"""Text helpers shared by the clothing and Amazon data: light normalization for transformers."""

import html
import re

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
