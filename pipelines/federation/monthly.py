#!/usr/bin/env python3
"""The federation's monthly figures, on Apache Spark, over what its cooperatives share with
`vaten publish` (one folder or bucket; each cooperative under `coop=<id>/`).

Writes two tables (CSV with a header, one file each, and Parquet) under OUT:
- `coop_monthly`: per cooperative, region and month: L, T, P, V, matched energy (Wh), local
  share (matched / L), completeness (connection quarter-hours reporting / expected), and the
  quarter-hours whose figure a cooperative withheld (fewer than 5 connections contributed);
- `cable_monthly`: per cooperative, cable group and month: the same energies and the
  quarter-hours beyond the cable's agreed voltage limits.

Sums are of the published quarter-hours (withheld ones are null and left out), exactly as
the cooperatives' own `days` and `months` tables add them up.

Local mode (PySpark from PyPI, Java 17):
    python3 pipelines/federation/monthly.py SHARED OUT
On a cluster, with the shared aggregates on S3 (see docs/federation.md):
    spark-submit --master yarn pipelines/federation/monthly.py s3a://federation/shared s3a://federation/reports
"""
import argparse
import os

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

ENERGY = ["l_wh", "t_wh", "p_wh", "v_wh", "matched_wh"]


def cooperatives(spark, shared):
    """The `coop=<id>` folders under `shared` (any file system Hadoop knows: file, s3a)."""
    jvm = spark.sparkContext._jvm
    pattern = jvm.org.apache.hadoop.fs.Path(f"{shared.rstrip('/')}/coop=*")
    fs = pattern.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    found = fs.globStatus(pattern) or []
    return sorted(str(s.getPath().getName())[len("coop="):] for s in found if s.isDirectory())


def shared_table(spark, shared, coops, table):
    """A table of every cooperative (each read with its own hive partitions), with the
    cooperative from its folder as a column."""
    parts = [
        spark.read.parquet(f"{shared.rstrip('/')}/coop={c}/{table}").withColumn("coop", F.lit(c))
        for c in coops
    ]
    out = parts[0]
    for p in parts[1:]:
        out = out.unionByName(p)
    return out


def monthly(df, keys):
    sums = [F.sum(c).alias(c) for c in ENERGY]
    withheld = [F.sum(F.when(F.col(c).isNull(), 1).otherwise(0)).alias(c.replace("_wh", "_withheld")) for c in ENERGY]
    return (
        df.withColumn("month", F.date_format(F.col("date"), "yyyy-MM"))
        .groupBy(*keys, "month")
        .agg(
            *sums,
            *withheld,
            F.count(F.lit(1)).alias("quarter_hours"),
            F.sum("connections").alias("connection_quarters"),
            F.sum("connections_reporting").alias("connection_quarters_reporting"),
        )
        .withColumn("local_share", F.col("matched_wh") / F.col("l_wh"))
        .withColumn("completeness", F.col("connection_quarters_reporting") / F.col("connection_quarters"))
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("shared", help="the folder or bucket the cooperatives publish to")
    ap.add_argument("out", help="where the federation's tables go")
    args = ap.parse_args()
    builder = SparkSession.builder.appName("vaten-federation-monthly")
    if "SPARK_MASTER" in os.environ:
        builder = builder.master(os.environ["SPARK_MASTER"])
    spark = builder.config("spark.sql.session.timeZone", "UTC").getOrCreate()
    spark.sparkContext.setLogLevel("WARN")

    coops = cooperatives(spark, args.shared)
    if not coops:
        raise SystemExit(f"no coop=<id> folder under {args.shared}")
    quarters = shared_table(spark, args.shared, coops, "quarter_hours")
    coop = monthly(quarters.filter(F.col("scope") == "cooperative"), ["coop", "region"])
    cables = monthly(quarters.filter(F.col("scope") != "cooperative"), ["coop", "region", "scope"])
    days = shared_table(spark, args.shared, coops, "days").filter(F.col("scope") != "cooperative")
    beyond = (
        days.withColumn("month", F.date_format(F.col("date"), "yyyy-MM"))
        .groupBy("coop", "scope", "month")
        .agg(F.sum("quarter_hours_beyond_limits").alias("quarter_hours_beyond_limits"))
    )
    cables = cables.join(beyond, ["coop", "scope", "month"], "left")

    for name, df in [("coop_monthly", coop), ("cable_monthly", cables)]:
        df = df.orderBy(*[c for c in ["coop", "scope", "month"] if c in df.columns])
        df.write.mode("overwrite").parquet(f"{args.out.rstrip('/')}/{name}")
        df.coalesce(1).write.mode("overwrite").option("header", True).csv(f"{args.out.rstrip('/')}/{name}_csv")
    spark.stop()


if __name__ == "__main__":
    main()
