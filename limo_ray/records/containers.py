"""File containers: turn the bytes of a ``.jsonl`` / ``.json`` / ``.parquet`` file into numbered records.

The container is picked by extension (on the path without its ``?query``):
  - ``.jsonl`` / ``.ndjson`` (optionally ``.gz``): one JSON object per line. Blank lines are skipped and
    count neither as rows in nor as rejected; line numbers stay physical, so ``source_line`` points at the
    real line in the file.
  - ``.json`` (optionally ``.gz``): one top-level array of objects, or an object holding exactly one list
    of records (``{"data": [...]}``). ``source_line`` is the 1-based index in that array.
  - ``.parquet``: one record per row; ``source_line`` is the 1-based row index over all row groups.

A record that is not an object (bad JSON on one line, a number in the array) comes out as a `BadRow`; a file
that cannot be read at all is a `LimoError`. Which fields a record holds is `formats`' business, not this one's.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, Literal

import pyarrow.fs as pafs
import pyarrow.parquet as pq

from limo_ray.errors import LimoError, one_line
from limo_ray.records.schema import BadRow

__all__ = [
    "RAW_MAX_CHARS",
    "Container",
    "NumberedRows",
    "container_of",
    "has_data_suffix",
    "json_kind",
    "raw_record",
    "read_rows",
]

# A rejected row keeps its raw text for inspection; a multi-megabyte garbage "line" would only bloat the
# quarantine file, so the raw text is cut here (the reason and line number still locate it exactly).
RAW_MAX_CHARS = 100_000
_READ_CHUNK = 1 << 20

_JSONL_SUFFIXES = (".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz")
_JSON_SUFFIXES = (".json", ".json.gz")
_PARQUET_SUFFIXES = (".parquet", ".pq")
_DATA_SUFFIXES = _JSONL_SUFFIXES + _JSON_SUFFIXES + _PARQUET_SUFFIXES

Container = Literal["jsonl", "json", "parquet"]
# (1-based line or row number, the record or why it is not one)
NumberedRows = Iterator[tuple[int, dict[str, Any] | BadRow]]


def has_data_suffix(path: str) -> bool:
    """Whether a file name ends in one of the container extensions (how a directory's data files are found)."""
    return path.lower().endswith(_DATA_SUFFIXES)


def container_of(path: str, source: str) -> Container:
    """The container a file is read as, from ``path`` (no ``?query``); ``source`` names it in the error."""
    path = path.lower()
    if path.endswith(_JSONL_SUFFIXES):
        return "jsonl"
    if path.endswith(_JSON_SUFFIXES):
        return "json"
    if path.endswith(_PARQUET_SUFFIXES):
        return "parquet"
    raise LimoError(
        f"cannot tell the file type of {source}: use .jsonl, .json or .parquet (.jsonl.gz and .json.gz also work)"
    )


def read_rows(container: Container, fs: pafs.FileSystem, path: str, source: str) -> NumberedRows:
    """Stream the records of the file at ``path`` on ``fs``, in file order; ``source`` names it in rows and errors."""
    reader = {"jsonl": _jsonl_rows, "json": _json_rows, "parquet": _parquet_rows}[container]
    return reader(fs, path, source)


def _clip_raw(text: str) -> str:
    if len(text) <= RAW_MAX_CHARS:
        return text
    return f"{text[:RAW_MAX_CHARS]}...[truncated {len(text) - RAW_MAX_CHARS} chars]"


def raw_record(record: Any) -> str:
    """A record as the raw text a BadRow keeps: JSON, cut at RAW_MAX_CHARS."""
    return _clip_raw(json.dumps(record, ensure_ascii=False, default=str))


def json_kind(value: Any) -> str:
    """The JSON name of a value's type ("null", "array"...), for messages that say what was found."""
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
        raise LimoError(f"reading {source} failed: {one_line(exc)}") from exc


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


def _open_stream(fs: pafs.FileSystem, path: str, source: str) -> Any:
    try:
        # compression="detect" decompresses .gz (and other known suffixes) transparently.
        return fs.open_input_stream(path, compression="detect")
    except Exception as exc:
        raise LimoError(f"cannot read {source}: {one_line(exc)}") from exc


def _jsonl_rows(fs: pafs.FileSystem, path: str, source: str) -> NumberedRows:
    def reject(number: int, reason: str, raw: str) -> tuple[int, BadRow]:
        return number, BadRow(reason=reason, source=source, line=number, raw=_clip_raw(raw))

    with _open_stream(fs, path, source) as stream:
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
                yield reject(number, f"line is not valid JSON: {one_line(exc)}", text)
                continue
            if not isinstance(value, dict):
                yield reject(number, f"line is a JSON {json_kind(value)}, expected one object per line", text)
                continue
            yield number, value


def _json_rows(fs: pafs.FileSystem, path: str, source: str) -> NumberedRows:
    with _open_stream(fs, path, source) as stream:
        data = _read(stream, source)
    try:
        value = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as exc:
        hint = " (one object per line? name it .jsonl)" if data.lstrip()[:1] == b"{" else ""
        raise LimoError(f"{source} is not a valid JSON file{hint}: {one_line(exc)}") from exc
    if isinstance(value, dict):
        lists = [v for v in value.values() if isinstance(v, list)]
        if len(lists) != 1:
            raise LimoError(
                f"{source} holds a JSON object, not a list of records: expected an array, or an object with "
                'exactly one list (e.g. {"data": [...]})'
            )
        value = lists[0]
    if not isinstance(value, list):
        raise LimoError(f"{source} holds a JSON {json_kind(value)}; expected an array of records")
    for index, item in enumerate(value, start=1):
        if isinstance(item, dict):
            yield index, item
        else:
            reason = f"record is a JSON {json_kind(item)}, expected an object"
            yield index, BadRow(reason=reason, source=source, line=index, raw=raw_record(item))


def _parquet_rows(fs: pafs.FileSystem, path: str, source: str) -> NumberedRows:
    handle = None
    try:
        handle = fs.open_input_file(path)
        batches = pq.ParquetFile(handle).iter_batches(batch_size=1024)
    except Exception as exc:
        if handle is not None:
            handle.close()
        raise LimoError(f"cannot read {source} as Parquet: {one_line(exc)}") from exc
    index = 0
    with handle:
        while True:
            try:
                batch = next(batches, None)
            except Exception as exc:
                raise LimoError(f"reading {source} failed after row {index}: {one_line(exc)}") from exc
            if batch is None:
                return
            for record in batch.to_pylist():
                index += 1
                yield index, record
