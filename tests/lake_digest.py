#!/usr/bin/env python3
"""Independent reader: DuckDB's row count and an order-free digest of every row of each named
table, every column but run_id (the one a migration adds), as JSON {table: [rows, digest]};
a table without files is [0, 0].
Also "<table>.run_id": [files with a run_id column, files, rows whose run_id is null].
Usage: lake_digest.py LAKE TABLE..."""
import glob
import json
import sys

import duckdb
import pyarrow.parquet as pq

BOOKKEEPING = {"run_id"}

lake, tables = sys.argv[1], sys.argv[2:]
con = duckdb.connect()
out = {}
for table in tables:
    files = sorted(glob.glob(f"{lake}/{table}/**/*.parquet", recursive=True))
    if not files:
        out[table] = [0, 0]
        continue
    rel = con.read_parquet(files, hive_partitioning=True, union_by_name=True)
    cols = [f'"{c}"' for c in rel.columns if c not in BOOKKEEPING]
    rows, digest = con.sql(
        f"SELECT count(*), coalesce(sum(hash({', '.join(cols)})::HUGEINT), 0)::VARCHAR FROM rel"
    ).fetchall()[0]
    out[table] = [rows, digest]
    with_run = [f for f in files if "run_id" in pq.read_schema(f).names]
    nulls = (
        con.sql("SELECT count(*) FROM rel WHERE run_id IS NULL").fetchall()[0][0]
        if "run_id" in rel.columns
        else rows
    )
    out[f"{table}.run_id"] = [len(with_run), len(files), nulls]
print(json.dumps(out, sort_keys=True))
