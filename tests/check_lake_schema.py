#!/usr/bin/env python3
"""Independent check of the lake: pyarrow reads each table and compares it with the data
dictionary (docs/data-dictionary.md). Usage: check_lake_schema.py LAKE DICTIONARY TABLE..."""
import datetime
import pathlib
import re
import sys

import pyarrow as pa
import pyarrow.parquet as pq

TYPES = {
    "string": pa.string(),
    "int64": pa.int64(),
    "float64": pa.float64(),
    "bool": pa.bool_(),
    "timestamp[us, UTC]": pa.timestamp("us", tz="UTC"),
    "date32": pa.date32(),
}

PARTITION_VALUE = {"date": r"\d{4}-\d{2}-\d{2}", "year": r"\d{4}"}


def dictionary(path):
    """{table: {"columns": [(name, type, nullable)], "partition": key or None}}"""
    tables, current, in_columns = {}, None, False
    for line in pathlib.Path(path).read_text().splitlines():
        m = re.match(r"^### `([a-z0-9_]+)`", line)
        if m:
            current = tables.setdefault(m.group(1), {"columns": [], "partition": None})
            continue
        # The prose line under a table's heading names its hive partition key.
        m = re.match(r"^Partitioned by `([a-z_]+)=", line)
        if m and current is not None:
            current["partition"] = m.group(1)
            continue
        # Only the column tables (header `| column | type | nullable | …`) describe columns.
        if line.startswith("| column | type | nullable |"):
            in_columns = True
            continue
        if not line.startswith("|"):
            in_columns = False
        if not in_columns:
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if current is None or len(cells) < 4 or not cells[0].startswith("`"):
            continue
        name, typ, nullable = cells[0].strip("`"), cells[1].strip("`"), cells[2]
        current["columns"].append((name, typ, nullable == "yes"))
    return tables


def main():
    lake, dict_path, names = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
    spec = dictionary(dict_path)
    # "(lake schema\nversion N," in the dictionary's opening paragraph.
    schema_version = int(re.search(r"lake schema\s+version (\d+)", pathlib.Path(dict_path).read_text()).group(1))
    problems = []
    for table in names:
        if table not in spec:
            problems.append(f"{table}: not in the data dictionary")
            continue
        files = sorted((lake / table).rglob("*.parquet"))
        if not files:
            problems.append(f"{table}: no files written")
            continue
        part = spec[table]["partition"]
        for f in files:
            rel = f.relative_to(lake / table)
            if part:
                folder = rel.parts[0]
                ok = len(rel.parts) == 2 and re.fullmatch(rf"{part}={PARTITION_VALUE[part]}", folder)
                if ok and part == "date":
                    try:
                        datetime.date.fromisoformat(folder.split("=", 1)[1])
                    except ValueError:
                        ok = False
                if not ok:
                    problems.append(f"{table}: {rel} is not under a {part}= folder of the right form")
            meta = pq.ParquetFile(f).metadata
            kv = {k.decode(): v.decode() for k, v in (meta.metadata or {}).items()}
            version = kv.get("vaten.schema_version", "")
            if not version.isdigit() or int(version) > schema_version or kv.get("vaten.table") != table:
                problems.append(f"{table}: {rel} lacks vaten key-value metadata of version ≤ {schema_version}")
            for rg in range(meta.num_row_groups):
                for c in range(meta.num_columns):
                    col = meta.row_group(rg).column(c)
                    if col.compression != "ZSTD":
                        problems.append(f"{table}: {rel} column {col.path_in_schema} is {col.compression}, not ZSTD")
                    if not col.is_stats_set:
                        problems.append(f"{table}: {rel} column {col.path_in_schema} has no statistics")
        want = spec[table]["columns"]
        # Every file, not only the first: a lake migrated from an older version must have no
        # file left in the old layout.
        for f in files:
            in_file = pq.read_schema(f).names
            if [n for n, _, _ in want] != in_file:
                problems.append(f"{table}: {f.relative_to(lake / table)} has columns {in_file}, the dictionary {[n for n, _, _ in want]}")
        schema = pq.read_schema(files[0])
        if part and part in schema.names:
            problems.append(f"{table}: partition key {part} is also a column inside the files")
        for name, typ, nullable in want:
            if name not in schema.names:
                continue
            field = schema.field(name)
            if typ not in TYPES:
                problems.append(f"{table}.{name}: dictionary type {typ} unknown to this check")
            elif field.type != TYPES[typ]:
                problems.append(f"{table}.{name}: file type {field.type}, dictionary says {typ}")
            if field.nullable != nullable:
                problems.append(f"{table}.{name}: nullable={field.nullable}, dictionary says {nullable}")
        # The whole table reads as one dataset with its hive partition.
        try:
            data = pq.read_table(lake / table, partitioning="hive" if part else None)
        except Exception as e:  # a broken layout is a finding, not a crash of the check
            problems.append(f"{table}: the dataset reader fails: {e}")
            continue
        if part and part not in data.column_names:
            problems.append(f"{table}: hive partition {part} not seen by the dataset reader")
        if data.num_rows == 0:
            problems.append(f"{table}: no rows")
    if problems:
        print("\n".join(problems))
        sys.exit(1)
    parted = [t for t in names if spec[t]["partition"]]
    print(f"checked {len(names)} tables ({len(parted)} with hive partitions: {', '.join(parted)})")


if __name__ == "__main__":
    main()
