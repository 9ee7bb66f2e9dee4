"""Benchmark task builder: MIMIC-III -> ihm, decomp, los, pheno, readmit (mimic3-benchmarks definitions).

Modules: ``io`` (the task tree contract: readers/writers, task and column names), ``variables``
(itemid map, unit cleaning, ranges), ``cohort`` (stays, filters), ``labels`` (task labels),
``features`` (handcrafted features), ``splits``, ``engine`` (the DuckDB build).
"""
