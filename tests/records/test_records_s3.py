"""Loading from S3 with pyarrow's real S3 client against a real local S3 server (moto), no client mocks."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from limo_ray.errors import LimoError
from limo_ray.records import expand_sources, load_problems

moto_server = pytest.importorskip("moto.server", reason="moto[server] is a dev dependency")
boto3 = pytest.importorskip("boto3", reason="boto3 is a dev dependency")

BUCKET = "limo-data"
_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    # Never let the SDK wander off to an instance-metadata endpoint or a developer's real config.
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}


def _jsonl(*records: object) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)


def _parquet_bytes() -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table({"problem": ["What is 6*7?", None], "answer": pa.array([42.0, 1.0])}), sink)
    return sink.getvalue().to_pybytes()


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server on a free local port with a bucket of small problem files; yields host:port."""
    with pytest.MonkeyPatch.context() as mp:
        for key, value in _ENV.items():
            mp.setenv(key, value)
        mp.delenv("AWS_ENDPOINT_URL", raising=False)
        mp.delenv("AWS_ENDPOINT_URL_S3", raising=False)
        server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        try:
            host, port = server.get_host_and_port()
            client = boto3.client("s3", endpoint_url=f"http://{host}:{port}", region_name="us-east-1")
            client.create_bucket(Bucket=BUCKET)
            objects = {
                "pool/a.jsonl": _jsonl({"problem": "What is 1+1?", "answer": 2}),
                "pool/b.jsonl": _jsonl({"problem": "What is 2+3?", "answer": "5"}, {"problem": ""}) + b"not json\n",
                "pool/notes.txt": b"not data",
                "pool/deeper/c.jsonl": _jsonl({"question": "Pick one. A. x B. y", "answer": "B", "id": 9}),
                "pool/list.json": json.dumps([{"problem": "AMC?", "answer": 27.0}, 3]).encode(),
                "pool/table.parquet": _parquet_bytes(),
            }
            for key, body in objects.items():
                client.put_object(Bucket=BUCKET, Key=key, Body=body)
            yield f"{host}:{port}"
        finally:
            server.stop()


def _query(endpoint: str) -> str:
    return f"?endpoint_override={endpoint}&scheme=http&region=us-east-1"


def test_s3_jsonl_loads_through_uri_query_options(s3_endpoint: str) -> None:
    uri = f"s3://{BUCKET}/pool/b.jsonl{_query(s3_endpoint)}"
    result = load_problems([uri])
    assert [p.answer for p in result.problems] == ["5"]
    assert [bad.line for bad in result.rejected] == [2, 3]
    assert "is empty" in result.rejected[0].reason
    assert "not valid JSON" in result.rejected[1].reason
    assert result.rows_in == 3
    assert result.problems[0].source == uri


def test_s3_glob_matches_only_its_own_directory_level(s3_endpoint: str) -> None:
    query = _query(s3_endpoint)
    found = expand_sources([f"s3://{BUCKET}/pool/*.jsonl{query}"])
    assert found == [f"s3://{BUCKET}/pool/a.jsonl{query}", f"s3://{BUCKET}/pool/b.jsonl{query}"]
    deep = expand_sources([f"s3://{BUCKET}/pool/**/*.jsonl{query}"])
    assert [uri.split("?")[0] for uri in deep] == [
        f"s3://{BUCKET}/pool/a.jsonl",
        f"s3://{BUCKET}/pool/b.jsonl",
        f"s3://{BUCKET}/pool/deeper/c.jsonl",
    ]
    result = load_problems([f"s3://{BUCKET}/pool/*.jsonl{query}"])
    assert result.rows_in == 4 == len(result.problems) + len(result.rejected)
    assert [p.answer for p in result.problems] == ["2", "5"]


def test_s3_endpoint_from_aws_endpoint_url_env(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://{s3_endpoint}")
    result = load_problems([f"s3://{BUCKET}/pool/deeper/*.jsonl"])
    (problem,) = result.problems
    assert (problem.id, problem.answer, problem.source_format) == ("9", "B", "gpqa")
    assert problem.source == f"s3://{BUCKET}/pool/deeper/c.jsonl"


def test_s3_directory_expands_to_its_data_files(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://{s3_endpoint}")
    assert expand_sources([f"s3://{BUCKET}/pool"]) == [
        f"s3://{BUCKET}/pool/{name}" for name in ("a.jsonl", "b.jsonl", "list.json", "table.parquet")
    ]


def test_s3_json_and_parquet_files_load(s3_endpoint: str) -> None:
    query = _query(s3_endpoint)
    listed = load_problems([f"s3://{BUCKET}/pool/list.json{query}"])
    assert [p.answer for p in listed.problems] == ["27.0"]
    assert "JSON number" in listed.rejected[0].reason
    table = load_problems([f"s3://{BUCKET}/pool/table.parquet{query}"])
    assert [p.answer for p in table.problems] == ["42.0"]
    assert [bad.line for bad in table.rejected] == [2]


def test_s3_credentials_in_the_uri_stay_out_of_rows(s3_endpoint: str) -> None:
    # moto accepts any key pair; pyarrow takes keys from the URI's user info.
    result = load_problems([f"s3://testing:s3cr3t-value@{BUCKET}/pool/*.jsonl{_query(s3_endpoint)}"])
    assert [p.answer for p in result.problems] == ["2", "5"]
    recorded = [p.source for p in result.problems] + [b.source for b in result.rejected] + result.sources
    assert not any("s3cr3t" in text or "testing" in text for text in recorded)
    assert result.problems[0].source == f"s3://{BUCKET}/pool/a.jsonl{_query(s3_endpoint)}"
    with pytest.raises(LimoError) as caught:
        expand_sources([f"s3://testing:s3cr3t-value@{BUCKET}/pool/none-*.jsonl{_query(s3_endpoint)}"])
    assert "s3cr3t" not in str(caught.value)


def test_s3_pattern_matching_nothing_is_a_user_error(s3_endpoint: str) -> None:
    with pytest.raises(LimoError, match=r"no data file matches 's3://limo-data/pool/\*\.parquetx"):
        expand_sources([f"s3://{BUCKET}/pool/*.parquetx{_query(s3_endpoint)}"])
    with pytest.raises(LimoError, match="no data file matches"):
        expand_sources([f"s3://{BUCKET}/pool/missing.jsonl{_query(s3_endpoint)}"])
