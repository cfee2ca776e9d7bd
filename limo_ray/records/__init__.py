"""Row schemas and the loaders that turn problem files (local, S3, GCS) into `Problem` rows."""

from limo_ray.records.boxed import last_boxed
from limo_ray.records.formats import FORMAT_NAMES, FORMATS, FieldMap, detect_format, to_problem
from limo_ray.records.loaders import LoadResult, iter_records, load_problems, write_rejected
from limo_ray.records.schema import (
    Attempt,
    BadRow,
    Chain,
    Problem,
    Row,
    Sample,
    normalize_text,
    text_id,
)
from limo_ray.records.sources import display_source, expand_sources

__all__ = [
    "FORMATS",
    "FORMAT_NAMES",
    "Attempt",
    "BadRow",
    "Chain",
    "FieldMap",
    "LoadResult",
    "Problem",
    "Row",
    "Sample",
    "detect_format",
    "display_source",
    "expand_sources",
    "iter_records",
    "last_boxed",
    "load_problems",
    "normalize_text",
    "text_id",
    "to_problem",
    "write_rejected",
]
