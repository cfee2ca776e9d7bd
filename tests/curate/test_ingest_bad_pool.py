"""`limo curate --until ingest` on a pool with malformed rows of every kind: every row is a problem or a
quarantined row with its reason, and the counts reconcile across the manifest, the ledger and curate/rejected/."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

from tests.fixtures import MALFORMED_JSONL_LINES, write_malformed_jsonl


def test_malformed_pool_rows_are_quarantined_with_reasons_and_counts_reconcile(tmp_path: Path) -> None:
    pool = tmp_path / "pool.jsonl"
    expected = write_malformed_jsonl(pool)
    run_dir = tmp_path / "run"
    command = ["curate", "--config", "tiny", "--set", "toy.size=test", "--until", "ingest", "--pool", str(pool)]
    command += ["--run-dir", str(run_dir)]
    done = subprocess.run(
        [sys.executable, "-m", "limo_ray.cli", *command],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    bad = {line: reason for line, reason in expected.items() if reason}
    good = [line for line, reason in expected.items() if reason is None]

    manifest = json.loads((run_dir / "curate" / "ingest" / "manifest.json").read_text())
    assert manifest["complete"]
    assert manifest["rows_in"] == len(MALFORMED_JSONL_LINES) == manifest["rows_out"] + manifest["rows_rejected"]
    assert (manifest["rows_out"], manifest["rows_rejected"]) == (len(good), len(bad))

    quarantine = run_dir / "curate" / "rejected" / "ingest.jsonl"
    rejected = [json.loads(line) for line in quarantine.read_text().splitlines()]
    assert {row["line"]: row["source"] for row in rejected} == {line: str(pool) for line in bad}
    for row in rejected:
        assert bad[row["line"]] in row["reason"]  # the cause a user can act on, row by row

    ledger = pq.read_table(run_dir / "curate" / "ledger.parquet").to_pylist()
    assert sorted(row["source_line"] for row in ledger) == good
    assert all(row["ingest"] == "kept" for row in ledger)
    assert f"ingest: {len(MALFORMED_JSONL_LINES)} in -> {len(good)} kept, 0 dropped, {len(bad)} rejected" in done.stdout
