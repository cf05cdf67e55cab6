"""Review tables uploaded to the app: a CSV read as text whatever Excel saved it as, the column that likely holds the
review, and cells a spreadsheet would run as formulas made inert before the table goes back to the user."""

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

TEXT_COLUMN_GUESSES = ("review", "review_text", "review text", "reviewtext", "text", "content", "body", "comment")
# UTF-8 (a byte-order mark is skipped), then Windows-1252, the encoding of Excel's "CSV" export on Windows.
CSV_ENCODINGS = ("utf-8-sig", "cp1252")
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")  # what spreadsheets run as a formula (OWASP CSV injection)


def guess_text_column(columns: Sequence[str]) -> str | None:
    """The column most likely to hold the review text: a known name, else one naming review/text, else the first."""
    by_name = {str(column).strip().lower(): column for column in columns}
    for name in TEXT_COLUMN_GUESSES:
        if name in by_name:
            return by_name[name]
    for column in columns:
        if "review" in str(column).lower() or "text" in str(column).lower():
            return column
    return columns[0] if len(columns) else None


class MalformedCsvError(ValueError):
    """The uploaded file cannot be read as a CSV with a header row."""


def read_csv_text(path: str | Path, **options) -> tuple[pd.DataFrame, str]:
    """The CSV with every column as text, and the encoding it was read with."""
    with open(path, "rb") as handle:
        if b"\x00" in handle.read(65536):  # Windows-1252 decodes almost any bytes: tell binary files apart first
            raise MalformedCsvError("the file is not text (it holds NUL bytes)")
    for encoding in CSV_ENCODINGS:
        try:
            return pd.read_csv(path, dtype=str, keep_default_na=False, encoding=encoding, **options), encoding
        except UnicodeDecodeError:
            continue
    raise MalformedCsvError("the file is neither UTF-8 nor Windows-1252 text")


def read_reviews_csv(path: str | Path) -> tuple[pd.DataFrame, str]:
    """All columns as text, and the encoding used; a file that is not a CSV with a header raises MalformedCsvError
    with the reason."""
    try:
        table, encoding = read_csv_text(path)
    except pd.errors.EmptyDataError:
        raise MalformedCsvError("the file is empty") from None
    except pd.errors.ParserError as error:
        raise MalformedCsvError(f"it is not a well-formed CSV ({str(error).strip()})") from None
    if table.empty:
        raise MalformedCsvError("it has a header but no rows")
    return table.fillna(""), encoding


def neutralize_formulas(table: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Text cells a spreadsheet would run as a formula get a leading apostrophe (shown as text, not evaluated);
    returns the table and how many cells changed."""
    safe, changed = table.copy(), 0
    for column in safe.columns:
        if not (pd.api.types.is_string_dtype(safe[column]) or pd.api.types.is_object_dtype(safe[column])):
            continue
        risky = safe[column].map(lambda value: isinstance(value, str) and value.startswith(FORMULA_PREFIXES))
        risky = risky.astype(bool)
        if risky.any():
            safe[column] = safe[column].astype(object).where(~risky, "'" + safe[column].astype(str))
            changed += int(risky.sum())
    return safe, changed
