"""Curation: from a raw pool to a LIMO dataset, as an ordered list of small named stages.

Part 1 (this package so far): ingest -> dedup -> decontaminate -> weak filter -> strong filter, each stage
materialised under `curate/<stage>/` with a manifest, every decision recorded in `curate/ledger.parquet`.
"""
