"""Curation: from a raw pool to a LIMO dataset, as an ordered list of small named stages.

ingest -> dedup -> decontaminate -> weak_filter -> strong_filter -> balance -> chains -> quality -> select ->
export; each stage materialised under `curate/<stage>/` with a manifest, every decision recorded in
`curate/ledger.parquet`, the dataset and its data card written by export.
"""
