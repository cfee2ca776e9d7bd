"""Read problem files (local, S3, GCS) in the dataset formats LIMO works with, into `Problem` rows.

Every input row ends up in exactly one place: a `Problem`, or a `BadRow` that says why it was not one.
Nothing is dropped silently, so ``rows_in == len(problems) + len(rejected)`` for every load and a user can
open the rejected file to see what went wrong in which line.

File-level problems (no file matches a pattern, unknown extension, a ``.json`` file that is not JSON,
an unreachable bucket) are `LimoError`s: they are the user's to fix and no row could be read anyway.
Row-level problems (bad JSON on one line, a record without problem text or gold answer) are `BadRow`s.

Containers, picked by extension (a ``?query`` on a URI is ignored for this):
  - ``.jsonl`` / ``.ndjson`` (optionally ``.gz``): one JSON object per line. Blank lines are skipped and
    count neither as rows in nor as rejected; line numbers stay physical, so ``source_line`` points at the
    real line in the file.
  - ``.json`` (optionally ``.gz``): one top-level array of objects, or an object holding exactly one list
    of records (``{"data": [...]}``). ``source_line`` is the 1-based index in that array.
  - ``.parquet``: one record per row; ``source_line`` is the 1-based row index over all row groups.

Record formats (``fmt``): see `FORMATS` and `detect_format`.
"""

from __future__ import annotations

import fnmatch
import glob
import json
import math
import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from dataclasses import fields as dataclass_fields
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit

import pyarrow.fs as pafs
import pyarrow.parquet as pq

from limo_ray.errors import LimoError
from limo_ray.records.boxed import last_boxed
from limo_ray.records.schema import BadRow, Problem, text_id

__all__ = [
    "FORMATS",
    "FORMAT_NAMES",
    "FieldMap",
    "LoadResult",
    "detect_format",
    "display_source",
    "expand_sources",
    "iter_records",
    "load_problems",
    "to_problem",
    "write_rejected",
]

# A rejected row keeps its raw text for inspection; a multi-megabyte garbage "line" would only bloat the
# quarantine file, so the raw text is cut here (the reason and line number still locate it exactly).
RAW_MAX_CHARS = 100_000
# Metadata is for small identifying fields (year, url, source...); long texts are not metadata.
METADATA_MAX_CHARS = 512
_READ_CHUNK = 1 << 20

_JSONL_SUFFIXES = (".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz")
_JSON_SUFFIXES = (".json", ".json.gz")
_PARQUET_SUFFIXES = (".parquet", ".pq")
_DATA_SUFFIXES = _JSONL_SUFFIXES + _JSON_SUFFIXES + _PARQUET_SUFFIXES
_GLOB_CHARS = re.compile(r"[*?\[]")
_CHOICE_LETTER = re.compile(r"[A-J]")

AnswerStyle = Literal["plain", "gsm8k", "olympiad"]


@dataclass(frozen=True)
class _Spec:
    """Where one record format keeps each value: candidate field names, first present wins."""

    problem: tuple[str, ...]
    answer: tuple[str, ...]
    solution: tuple[str, ...]
    id: tuple[str, ...]
    domain: tuple[str, ...]
    difficulty: tuple[str, ...]
    answer_style: AnswerStyle = "plain"


FORMATS: dict[str, _Spec] = {
    # Hendrycks MATH / MATH-500 / Minerva (Qwen): gold in `answer`, else the last \boxed{} of `solution`.
    "math": _Spec(
        problem=("problem",),
        answer=("answer",),
        solution=("solution",),
        id=("unique_id", "id", "idx"),
        domain=("type", "subject"),
        difficulty=("level", "difficulty"),
    ),
    # NuminaMath-CoT: no answer column; the gold is the last \boxed{} of `solution` (NuminaMath-1.5 has one).
    "numina": _Spec(
        problem=("problem",),
        answer=("answer",),
        solution=("solution",),
        id=("id", "uuid"),
        domain=("problem_type",),
        difficulty=(),
    ),
    # AIME / AMC lists and the DeepScaleR competition pool: answer is a string or a number (27.0).
    "aime": _Spec(
        problem=("problem", "question"),
        answer=("answer",),
        solution=("solution",),
        id=("id", "idx"),
        domain=("type", "subject"),
        difficulty=("difficulty", "level"),
    ),
    # GSM8K: `answer` is the worked solution; the gold is the text after "####".
    "gsm8k": _Spec(
        problem=("question", "problem"),
        answer=("answer",),
        solution=(),
        id=("idx", "id"),
        domain=(),
        difficulty=(),
        answer_style="gsm8k",
    ),
    # OlympiadBench (Qwen2.5-Math copy): gold is final_answer[0] with its $...$ stripped, as Qwen grades it.
    "olympiadbench": _Spec(
        problem=("question", "problem"),
        answer=("final_answer", "answer"),
        solution=("solution",),
        id=("id",),
        domain=("subfield", "subject"),
        difficulty=(),
        answer_style="olympiad",
    ),
    # GPQA as LIMO ships it: options and instruction already in `question`, gold is the choice letter.
    "gpqa": _Spec(
        problem=("question", "problem"),
        answer=("answer",),
        solution=(),
        id=("id", "idx"),
        domain=("domain", "subdomain"),
        difficulty=(),
    ),
    # LIMO training data and LIMO eval sets; the question key order is LIMO's own eval code's order.
    "limo": _Spec(
        problem=("question", "problem", "Question", "input"),
        answer=("answer",),
        solution=("solution",),
        id=("id", "idx", "unique_id"),
        domain=("subject", "type", "subfield"),
        difficulty=("level", "difficulty"),
    ),
    "plain": _Spec(
        problem=("problem",),
        answer=("answer",),
        solution=("solution",),
        id=("id",),
        domain=(),
        difficulty=(),
    ),
}
FORMAT_NAMES = ("auto", *FORMATS)


@dataclass(frozen=True)
class FieldMap:
    """Explicit field names that override the format's own candidates (None keeps the format's)."""

    problem_field: str | None = None
    answer_field: str | None = None
    solution_field: str | None = None
    id_field: str | None = None
    domain_field: str | None = None
    difficulty_field: str | None = None

    @classmethod
    def coerce(cls, fields: FieldMap | Mapping[str, str | None] | None) -> FieldMap | None:
        """Accept a FieldMap, a plain mapping from config (unknown keys are an error), or None."""
        if fields is None or isinstance(fields, FieldMap):
            return fields
        known = {f.name for f in dataclass_fields(cls)}
        unknown = sorted(set(fields) - known)
        if unknown:
            raise LimoError(f"unknown field-map key(s) {', '.join(map(repr, unknown))}; use {', '.join(sorted(known))}")
        for key, value in fields.items():
            if value is not None and (not isinstance(value, str) or not value):
                raise LimoError(f"field-map key {key!r} must name a field (a non-empty string), got {value!r}")
        return cls(**dict(fields))

    def apply(self, spec: _Spec) -> _Spec:
        overrides = {
            name: (value,)
            for name, value in (
                ("problem", self.problem_field),
                ("answer", self.answer_field),
                ("solution", self.solution_field),
                ("id", self.id_field),
                ("domain", self.domain_field),
                ("difficulty", self.difficulty_field),
            )
            if value is not None
        }
        return replace(spec, **overrides) if overrides else spec


@dataclass
class LoadResult:
    """Everything one load read: kept problems, rejected rows, and the count that reconciles them."""

    problems: list[Problem] = field(default_factory=list)
    rejected: list[BadRow] = field(default_factory=list)
    rows_in: int = 0
    sources: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------- sources


def _is_uri(pattern: str) -> bool:
    return "://" in pattern


def _split_query(uri: str) -> tuple[str, str]:
    base, sep, query = uri.partition("?")
    return base, query if sep else ""


def _with_endpoint_env(uri: str) -> str:
    """Add AWS_ENDPOINT_URL(_S3) to an s3:// URI as pyarrow query options unless the URI sets its own.

    Recent pyarrow reads the variable itself, but not every build does, and without it the client would
    try real AWS (and region lookup) instead of the configured MinIO/moto/Ceph endpoint.
    """
    if not uri.startswith("s3://"):
        return uri
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    base, query = _split_query(uri)
    params = parse_qsl(query, keep_blank_values=True)
    if not endpoint or any(key == "endpoint_override" for key, _ in params):
        return uri
    parsed = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
    params.append(("endpoint_override", parsed.netloc + parsed.path.rstrip("/")))
    if not any(key == "scheme" for key, _ in params):
        params.append(("scheme", parsed.scheme or "https"))
    if not any(key == "region" for key, _ in params):
        # With an explicit endpoint there is no AWS to ask for the bucket's region.
        params.append(("region", os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"))
    return f"{base}?{urlencode(params, safe=':/')}"


def _filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """The pyarrow filesystem and in-filesystem path for a local path or a URI."""
    if not _is_uri(uri):
        return pafs.LocalFileSystem(), os.path.abspath(uri)
    try:
        return pafs.FileSystem.from_uri(_with_endpoint_env(uri))
    except Exception as exc:  # pyarrow raises ArrowInvalid / OSError / ValueError depending on scheme
        raise LimoError(f"cannot open {display_source(uri)}: {_one_line(exc)}") from exc


def _split_userinfo(rest: str) -> tuple[str, str]:
    """Split ``KEY:SECRET@bucket/path`` (the part after ``scheme://``) into ``KEY:SECRET@`` and the rest."""
    head = rest.split("/", 1)[0]
    if "@" not in head:
        return "", rest
    userinfo = head.rsplit("@", 1)[0] + "@"
    return userinfo, rest[len(userinfo) :]


def display_source(uri: str) -> str:
    """The URI as rows and messages record it: pyarrow takes S3 keys as ``s3://KEY:SECRET@bucket/...``,
    and those must not be copied into every Problem's `source` field or printed in an error."""
    if not _is_uri(uri):
        return uri
    scheme, _, rest = uri.partition("://")
    userinfo, rest = _split_userinfo(rest)
    return f"{scheme}://{rest}" if userinfo else uri


def _has_data_suffix(path: str) -> bool:
    return path.lower().endswith(_DATA_SUFFIXES)


def expand_sources(patterns: str | Iterable[str]) -> list[str]:
    """Expand local paths, globs and ``s3://`` / ``gs://`` URIs into a list of files to read.

    - A local glob (``data/*.jsonl``, ``data/**/*.json``) expands to its matches, sorted.
    - A directory (local or remote) expands to the data files directly in it (by extension), sorted.
    - A remote URI may glob with ``*`` and ``[...]`` in its path; ``?`` starts the URI's query (pyarrow
      options such as ``endpoint_override``), which every expanded URI keeps.
    - Order: patterns in the order given, each pattern's matches sorted; a file named twice is read once.

    Raises LimoError naming the pattern when it matches nothing.
    """
    out: list[str] = []
    seen: set[str] = set()
    for pattern in [patterns] if isinstance(patterns, str) else patterns:
        matches = _expand_remote(pattern) if _is_uri(pattern) else _expand_local(pattern)
        if not matches:
            raise LimoError(f"no data file matches {display_source(pattern)!r}; check the path or glob")
        for match in matches:
            if match not in seen:
                seen.add(match)
                out.append(match)
    return out


def _expand_local(pattern: str) -> list[str]:
    path = os.path.expanduser(pattern)
    if _GLOB_CHARS.search(path):
        return sorted(p for p in glob.glob(path, recursive=True) if os.path.isfile(p))
    if os.path.isdir(path):
        return sorted(
            os.path.join(path, name)
            for name in os.listdir(path)
            if _has_data_suffix(name) and os.path.isfile(os.path.join(path, name))
        )
    return [path] if os.path.isfile(path) else []


def _expand_remote(pattern: str) -> list[str]:
    base, query = _split_query(pattern)
    scheme, _, rest = base.partition("://")
    userinfo, rest = _split_userinfo(rest)
    fs, _ = _filesystem(f"{scheme}://{userinfo}{_glob_root(rest)}" + (f"?{query}" if query else ""))

    def to_uri(path: str) -> str:
        return f"{scheme}://{userinfo}{path}" + (f"?{query}" if query else "")

    try:
        if not _GLOB_CHARS.search(rest):
            info = fs.get_file_info(rest.rstrip("/"))
            if info.type == pafs.FileType.File:
                return [pattern]
            if info.type == pafs.FileType.Directory:
                listing = fs.get_file_info(pafs.FileSelector(rest.rstrip("/"), recursive=False))
                return sorted(
                    to_uri(i.path) for i in listing if i.type == pafs.FileType.File and _has_data_suffix(i.path)
                )
            return []
        root = _glob_root(rest)
        # Only walk deeper than the root when a wildcard sits in a directory part or `**` is used.
        recursive = "**" in rest or "/" in rest[len(root) :].strip("/")
        selector = pafs.FileSelector(root, recursive=recursive, allow_not_found=True)
        listing = fs.get_file_info(selector)
    except LimoError:
        raise
    except Exception as exc:
        raise LimoError(f"cannot list {display_source(pattern)}: {_one_line(exc)}") from exc
    return sorted(to_uri(i.path) for i in listing if i.type == pafs.FileType.File and _glob_match(i.path, rest))


def _glob_root(path: str) -> str:
    """The directory part of a glob before its first wildcard (``b/dir/*.jsonl`` -> ``b/dir``)."""
    parts = path.split("/")
    root: list[str] = []
    for part in parts:
        if _GLOB_CHARS.search(part):
            break
        root.append(part)
    if len(root) == len(parts):
        return path
    return "/".join(root)


def _glob_match(path: str, pattern: str) -> bool:
    """Shell-style match by path segment, so ``*`` never crosses ``/``; ``**`` matches any depth."""
    if "**" in pattern:
        return fnmatch.fnmatchcase(path, pattern.replace("**/", "*").replace("**", "*"))
    path_parts = path.strip("/").split("/")
    pattern_parts = pattern.strip("/").split("/")
    return len(path_parts) == len(pattern_parts) and all(
        fnmatch.fnmatchcase(p, q) for p, q in zip(path_parts, pattern_parts, strict=True)
    )


def _container(uri: str) -> Literal["jsonl", "json", "parquet"]:
    path = _split_query(uri)[0].lower()
    if path.endswith(_JSONL_SUFFIXES):
        return "jsonl"
    if path.endswith(_JSON_SUFFIXES):
        return "json"
    if path.endswith(_PARQUET_SUFFIXES):
        return "parquet"
    raise LimoError(
        f"cannot tell the file type of {display_source(uri)}: use .jsonl, .json or .parquet (.jsonl.gz and "
        ".json.gz also work)"
    )


# ---------------------------------------------------------------------------------------------- reading


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _raw(text: str) -> str:
    if len(text) <= RAW_MAX_CHARS:
        return text
    return f"{text[:RAW_MAX_CHARS]}...[truncated {len(text) - RAW_MAX_CHARS} chars]"


def _raw_record(record: Any) -> str:
    return _raw(json.dumps(record, ensure_ascii=False, default=str))


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return type(value).__name__


def _read(stream: Any, source: str, size: int = -1) -> bytes:
    """stream.read with I/O failures (network, truncated gzip) turned into one clear user-facing line."""
    try:
        return stream.read(size) if size >= 0 else stream.read()
    except Exception as exc:
        raise LimoError(f"reading {source} failed: {_one_line(exc)}") from exc


def _iter_lines(stream: Any, source: str) -> Iterator[bytes]:
    """Split a byte stream on b"\\n" only: JSON strings may hold U+2028 etc., which str.splitlines breaks.

    Pieces of a line longer than one chunk are joined once, so a huge line costs linear time.
    """
    tail: list[bytes] = []
    while chunk := _read(stream, source, _READ_CHUNK):
        parts = chunk.split(b"\n")
        tail.append(parts[0])
        if len(parts) == 1:
            continue
        yield b"".join(tail)
        yield from parts[1:-1]
        tail = [parts[-1]]
    last = b"".join(tail)
    if last:
        yield last


def _open_stream(uri: str) -> Any:
    fs, path = _filesystem(uri)
    try:
        # compression="detect" decompresses .gz (and other known suffixes) transparently.
        return fs.open_input_stream(path, compression="detect")
    except Exception as exc:
        raise LimoError(f"cannot read {display_source(uri)}: {_one_line(exc)}") from exc


def _jsonl_rows(uri: str, source: str) -> Iterator[tuple[int, dict[str, Any] | BadRow]]:
    def reject(number: int, reason: str, raw: str) -> tuple[int, BadRow]:
        return number, BadRow(reason=reason, source=source, line=number, raw=_raw(raw))

    with _open_stream(uri) as stream:
        for number, raw_line in enumerate(_iter_lines(stream, source), start=1):
            line = raw_line[:-1] if raw_line.endswith(b"\r") else raw_line
            if number == 1 and line.startswith(b"\xef\xbb\xbf"):
                line = line[3:]
            if not line.strip():
                continue
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError as exc:
                reason = f"line is not valid UTF-8 (byte 0x{line[exc.start]:02x} at offset {exc.start})"
                yield reject(number, reason, line.decode("utf-8", "replace"))
                continue
            try:
                value = json.loads(text)
            except ValueError as exc:
                yield reject(number, f"line is not valid JSON: {_one_line(exc)}", text)
                continue
            if not isinstance(value, dict):
                yield reject(number, f"line is a JSON {_json_kind(value)}, expected one object per line", text)
                continue
            yield number, value


def _json_rows(uri: str, source: str) -> Iterator[tuple[int, dict[str, Any] | BadRow]]:
    with _open_stream(uri) as stream:
        data = _read(stream, source)
    try:
        value = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as exc:
        hint = " (one object per line? name it .jsonl)" if data.lstrip()[:1] == b"{" else ""
        raise LimoError(f"{source} is not a valid JSON file{hint}: {_one_line(exc)}") from exc
    if isinstance(value, dict):
        lists = [v for v in value.values() if isinstance(v, list)]
        if len(lists) != 1:
            raise LimoError(
                f"{source} holds a JSON object, not a list of records: expected an array, or an object with "
                'exactly one list (e.g. {"data": [...]})'
            )
        value = lists[0]
    if not isinstance(value, list):
        raise LimoError(f"{source} holds a JSON {_json_kind(value)}; expected an array of records")
    for index, item in enumerate(value, start=1):
        if isinstance(item, dict):
            yield index, item
        else:
            reason = f"record is a JSON {_json_kind(item)}, expected an object"
            yield index, BadRow(reason=reason, source=source, line=index, raw=_raw_record(item))


def _parquet_rows(uri: str, source: str) -> Iterator[tuple[int, dict[str, Any] | BadRow]]:
    fs, path = _filesystem(uri)
    handle = None
    try:
        handle = fs.open_input_file(path)
        batches = pq.ParquetFile(handle).iter_batches(batch_size=1024)
    except Exception as exc:
        if handle is not None:
            handle.close()
        raise LimoError(f"cannot read {source} as Parquet: {_one_line(exc)}") from exc
    index = 0
    with handle:
        while True:
            try:
                batch = next(batches, None)
            except Exception as exc:
                raise LimoError(f"reading {source} failed after row {index}: {_one_line(exc)}") from exc
            if batch is None:
                return
            for record in batch.to_pylist():
                index += 1
                yield index, record


def iter_records(
    uri: str,
    fmt: str = "auto",
    fields: FieldMap | Mapping[str, str | None] | None = None,
) -> Iterator[Problem | BadRow]:
    """Stream one file (a path or URI, not a glob) as Problems and BadRows, in file order.

    The format, field map and file type are checked now (LimoError); the file is read as you iterate.
    """
    field_map = FieldMap.coerce(fields)
    _check_format(fmt)
    source = display_source(uri)
    reader = {"jsonl": _jsonl_rows, "json": _json_rows, "parquet": _parquet_rows}[_container(uri)]
    return _mapped(reader(uri, source), fmt, field_map, source)


def _mapped(
    rows: Iterator[tuple[int, dict[str, Any] | BadRow]], fmt: str, fields: FieldMap | None, source: str
) -> Iterator[Problem | BadRow]:
    for line, row in rows:
        yield (row if isinstance(row, BadRow) else to_problem(row, fmt=fmt, fields=fields, source=source, line=line))


def load_problems(
    patterns: str | Iterable[str],
    fmt: str = "auto",
    fields: FieldMap | Mapping[str, str | None] | None = None,
) -> LoadResult:
    """Expand ``patterns`` and read every file into one LoadResult (see `expand_sources`, `to_problem`)."""
    field_map = FieldMap.coerce(fields)
    _check_format(fmt)
    sources = expand_sources(patterns)
    result = LoadResult(sources=[display_source(s) for s in sources])
    for uri in sources:
        for item in iter_records(uri, fmt, field_map):
            result.rows_in += 1
            if isinstance(item, Problem):
                result.problems.append(item)
            else:
                result.rejected.append(item)
    return result


def write_rejected(rejected: Iterable[BadRow], path: str | os.PathLike[str]) -> Path:
    """Write BadRows as jsonl (keys reason, source, line, raw) atomically: readers never see half a file."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            for row in rejected:
                out.write(json.dumps(row.to_row(), ensure_ascii=False) + "\n")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


# ---------------------------------------------------------------------------------------------- mapping


def _check_format(fmt: str) -> None:
    if fmt not in FORMAT_NAMES:
        raise LimoError(f"unknown record format {fmt!r}; use one of {', '.join(FORMAT_NAMES)}")


def detect_format(record: Mapping[str, Any]) -> str:
    """The record format "auto" picks for one record, from which fields it has (first rule that fits):

    1. ``final_answer`` present                                   -> olympiadbench
    2. ``messages`` present, or ``source`` + ``solution`` and no ``answer`` -> numina
    3. ``question`` / ``Question`` / ``input`` present and no ``problem``:
       a. ``answer`` is text containing ``####``                  -> gsm8k
       b. ``answer`` is a single capital letter A-J               -> gpqa
       c. otherwise                                               -> limo
    4. ``problem`` present:
       a. any of ``level``, ``type``, ``subject``, ``unique_id``, or no ``answer`` -> math
       b. any of ``year``, ``url``, ``difficulty``, ``aime_number``             -> aime
       c. ``solution`` present                                    -> limo
       d. otherwise                                               -> plain
    5. otherwise -> plain (which then rejects the row: it has no problem text)

    Formats differ in field names and in how the gold is read (gsm8k: after ``####``; olympiadbench:
    ``final_answer[0]`` without ``$``; all: last ``\\boxed{}`` of the solution when there is no answer).
    """
    if "final_answer" in record:
        return "olympiadbench"
    if "messages" in record or ("source" in record and "solution" in record and "answer" not in record):
        return "numina"
    if "problem" not in record and any(k in record for k in ("question", "Question", "input")):
        answer = record.get("answer")
        if isinstance(answer, str) and "####" in answer:
            return "gsm8k"
        if isinstance(answer, str) and _CHOICE_LETTER.fullmatch(answer.strip()):
            return "gpqa"
        return "limo"
    if "problem" in record:
        if "answer" not in record or any(k in record for k in ("level", "type", "subject", "unique_id")):
            return "math"
        if any(k in record for k in ("year", "url", "difficulty", "aime_number")):
            return "aime"
        if "solution" in record:
            return "limo"
    return "plain"


def _first_present(record: Mapping[str, Any], names: tuple[str, ...]) -> str | None:
    return next((name for name in names if name in record), None)


def _number_text(value: int | float) -> str:
    """A number as the text it was written as: 27 -> "27", 27.0 -> "27.0", 1.8782106 -> "1.8782106"."""
    return repr(value) if isinstance(value, float) else str(value)


def _answer(record: Mapping[str, Any], spec: _Spec, solution: str | None) -> tuple[str | None, str | None, str | None]:
    """(answer, solution, rejection reason). The solution may change: GSM8K's lives in its answer."""
    name = next((n for n in spec.answer if record.get(n) is not None), None)
    value = record[name] if name is not None else None
    answer: str | None = None
    if isinstance(value, bool):
        return None, solution, f"answer field {name!r} is a boolean ({json.dumps(value)}), not an answer"
    if isinstance(value, float) and not math.isfinite(value):
        return None, solution, f"answer field {name!r} is {value!r}, not an answer"
    if spec.answer_style == "olympiad" and isinstance(value, list):
        # Qwen2.5-Math grades OlympiadBench against final_answer[0]; every row has exactly one entry.
        value = value[0] if value else None
    if isinstance(value, str):
        answer = value
        if spec.answer_style == "gsm8k" and "####" in value:
            worked, _, answer = value.rpartition("####")
            solution = solution or worked.strip() or None
        if spec.answer_style == "olympiad":
            answer = answer.strip().strip("$")
        answer = answer.strip()
    elif isinstance(value, int | float):
        answer = _number_text(value)
    elif isinstance(value, list | dict) and value:
        # Compound golds (a list of values, or named parts as in Kaoyan) stay JSON so a grader can parse them.
        answer = json.dumps(value, ensure_ascii=False)
    elif value is not None and not isinstance(value, list | dict):
        return None, solution, f"answer field {name!r} is a {type(value).__name__}, not text or a number"
    if answer:
        return answer, solution, None
    boxed = last_boxed(solution) if solution else None
    if boxed is not None and boxed.strip():
        return boxed.strip(), solution, None
    null_name = next((n for n in spec.answer if n in record), None)
    if name is not None:
        detail = f"field {name!r} is empty"
    elif null_name is not None:
        detail = f"field {null_name!r} is null"
    else:
        detail = f"no field {'/'.join(repr(n) for n in spec.answer)}" if spec.answer else "no answer field"
    if solution:
        return None, solution, f"no answer ({detail}) and no \\boxed{{}} in solution"
    return None, solution, f"no answer ({detail}) and no solution with a \\boxed{{}} to take it from"


def _solution(record: Mapping[str, Any], names: tuple[str, ...]) -> str | None:
    name = next((n for n in names if record.get(n) is not None), None)
    value = record.get(name) if name is not None else None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        # OlympiadBench keeps one or more reference solutions as a list.
        value = "\n\n".join(value)
    return value if isinstance(value, str) and value.strip() else None


def _source_id(record: Mapping[str, Any], names: tuple[str, ...]) -> str | None:
    for name in names:
        value = record.get(name)
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, int):
            return str(value)
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _label(record: Mapping[str, Any], names: tuple[str, ...]) -> str | None:
    """Domain or difficulty as text: integral floats lose their ".0" (5.0 -> "5"), text stays as given."""
    for name in names:
        value = record.get(name)
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        if isinstance(value, int | float):
            return _number_text(value)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _metadata(record: Mapping[str, Any], used: set[str], problem: str) -> dict[str, str]:
    """The record's other small scalar fields as text (lists, dicts, nulls and long texts are left out)."""
    meta: dict[str, str] = {}
    for key, value in record.items():
        if key in used or key in ("messages", "solution") or value is None:
            continue
        if isinstance(value, bool):
            meta[key] = "true" if value else "false"
        elif isinstance(value, int | float):
            meta[key] = _number_text(value)
        elif isinstance(value, str) and len(value) <= METADATA_MAX_CHARS and value != problem:
            meta[key] = value
    return meta


def to_problem(
    record: Mapping[str, Any],
    *,
    fmt: str = "auto",
    fields: FieldMap | Mapping[str, str | None] | None = None,
    source: str,
    line: int,
) -> Problem | BadRow:
    """Map one record to a Problem, or to a BadRow saying which field is wrong and how.

    - problem: the first of the format's problem fields present; it must be non-blank text.
    - answer: the first non-null answer field; numbers keep their written form (27 -> "27", 27.0 ->
      "27.0"), a boolean is rejected, a list/dict becomes JSON text; when there is none, the last
      ``\\boxed{}`` of the solution; neither -> BadRow.
    - id: the source's id (ints as decimal text), else ``text_id(problem)``.
    - domain / difficulty: from type/subject/subfield and level/difficulty, as text.
    - metadata: the remaining small scalar fields, as text.
    """
    resolved = detect_format(record) if fmt == "auto" else fmt
    if resolved not in FORMATS:
        _check_format(resolved)
    spec = FORMATS[resolved]
    field_map = FieldMap.coerce(fields)
    if field_map is not None:
        spec = field_map.apply(spec)

    def bad(reason: str) -> BadRow:
        return BadRow(reason=reason, source=source, line=line, raw=_raw_record(record))

    problem_name = _first_present(record, spec.problem)
    if problem_name is None:
        if len(spec.problem) == 1:
            return bad(f"problem field {spec.problem[0]!r} is missing")
        looked = ", ".join(repr(n) for n in spec.problem)
        return bad(f"problem field is missing (none of {looked})")
    problem = record[problem_name]
    if problem is None:
        return bad(f"problem field {problem_name!r} is null")
    if not isinstance(problem, str):
        return bad(f"problem field {problem_name!r} is not text (a JSON {_json_kind(problem)})")
    if not problem.strip():
        return bad(f"problem field {problem_name!r} is empty" + (" (whitespace only)" if problem else ""))

    solution = _solution(record, spec.solution)
    answer, solution, reason = _answer(record, spec, solution)
    if reason is not None or answer is None:
        return bad(reason or "no answer")

    used = {problem_name}
    for names in (spec.answer, spec.solution, spec.id, spec.domain, spec.difficulty):
        used.update(n for n in names if n in record)
    return Problem(
        id=_source_id(record, spec.id) or text_id(problem),
        problem=problem,
        answer=answer,
        solution=solution,
        domain=_label(record, spec.domain),
        difficulty=_label(record, spec.difficulty),
        source=source,
        source_line=line,
        source_format=resolved,
        metadata=_metadata(record, used, problem),
    )
