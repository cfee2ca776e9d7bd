"""Where problem files live: expand local paths, globs and ``s3://`` / ``gs://`` URIs into files to read.

A URI's ``?query`` carries pyarrow filesystem options (``endpoint_override``...) and is kept on every file a
pattern expands to. Keys written into an S3 URI (``s3://KEY:SECRET@bucket/...``) are read but never shown:
`display_source` is the form rows and messages record.
"""

from __future__ import annotations

import fnmatch
import glob
import os
import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit

import pyarrow.fs as pafs

from limo_ray.errors import LimoError, one_line
from limo_ray.records.containers import has_data_suffix

__all__ = ["display_source", "expand_sources", "filesystem", "split_query"]

_GLOB_CHARS = re.compile(r"[*?\[]")


def _is_uri(pattern: str) -> bool:
    return "://" in pattern


def split_query(uri: str) -> tuple[str, str]:
    """(the URI without its ``?query``, the query): the query holds filesystem options, not the file's name."""
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
    base, query = split_query(uri)
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


def filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """The pyarrow filesystem and in-filesystem path for a local path or a URI."""
    if not _is_uri(uri):
        return pafs.LocalFileSystem(), os.path.abspath(uri)
    try:
        return pafs.FileSystem.from_uri(_with_endpoint_env(uri))
    except Exception as exc:  # pyarrow raises ArrowInvalid / OSError / ValueError depending on scheme
        raise LimoError(f"cannot open {display_source(uri)}: {one_line(exc)}") from exc


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
            if has_data_suffix(name) and os.path.isfile(os.path.join(path, name))
        )
    return [path] if os.path.isfile(path) else []


def _expand_remote(pattern: str) -> list[str]:
    base, query = split_query(pattern)
    scheme, _, rest = base.partition("://")
    userinfo, rest = _split_userinfo(rest)
    fs, _ = filesystem(f"{scheme}://{userinfo}{_glob_root(rest)}" + (f"?{query}" if query else ""))

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
                    to_uri(i.path) for i in listing if i.type == pafs.FileType.File and has_data_suffix(i.path)
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
        raise LimoError(f"cannot list {display_source(pattern)}: {one_line(exc)}") from exc
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
