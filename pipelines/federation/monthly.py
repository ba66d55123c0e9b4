#!/usr/bin/env python3
"""The federation's monthly figures, on Apache Spark, over what its cooperatives share with
`vaten publish` (one folder or bucket; each cooperative under `coop=<id>/`).

Writes two tables (CSV with a header, one file each, and Parquet) under OUT:
- `coop_monthly`: per cooperative, region and month: L, T, P, V, matched energy (Wh), local
  share (matched / L over the days both were shared), mean completeness (% of the connection
  quarter-hours with data), and how many days each figure was withheld (fewer than 5
  connections);
- `cable_monthly`: per cooperative, cable group and month: the same, and the quarter-hours
  beyond the cable's agreed voltage limits.

Sums are of the shared days (a withheld day is null and adds nothing), exactly as the
cooperatives' own `months` tables add them up.

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


def shared_days(spark, shared):
    """Every cooperative's `days` as one relation (the day is a column inside the files, so
    the files are read as they lie, without partition discovery), the cooperative from its
    folder as a column."""
    df = spark.read.option("recursiveFileLookup", "true").parquet(f"{shared.rstrip('/')}/coop=*/days")
    return df.withColumn("coop", F.regexp_extract(F.input_file_name(), r"coop=([^/]+)/days/", 1))


def monthly(days, keys):
    """Per month: the sums of the shared days (a withheld day adds nothing; how many were
    withheld is counted), local share over the days where matched energy was shared, and the
    mean completeness."""
    shared_m = F.col("matched_wh").isNotNull()
    aggs = [F.coalesce(F.sum(c), F.lit(0)).alias(c) for c in ENERGY]
    aggs += [F.sum(F.when(F.col(c).isNull(), 1).otherwise(0)).alias(c.replace("_wh", "_withheld_days")) for c in ENERGY]
    aggs += [
        F.count(F.lit(1)).alias("days"),
        F.sum(F.when(shared_m, F.col("matched_wh"))).alias("_m"),
        F.sum(F.when(shared_m, F.col("l_wh"))).alias("_l"),
        F.avg("completeness_pct").alias("completeness_pct"),
        F.sum("quarter_hours_beyond_limits").alias("quarter_hours_beyond_limits"),
    ]
    return (
        days.withColumn("month", F.date_format(F.col("date"), "yyyy-MM"))
        .groupBy(*keys, "month")
        .agg(*aggs)
        .withColumn("local_share", F.col("_m") / F.col("_l"))
        .drop("_m", "_l")
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
    days = shared_days(spark, args.shared)
    coop = monthly(days.filter(F.col("scope") == "cooperative"), ["coop", "region"]).drop("quarter_hours_beyond_limits")
    cables = monthly(days.filter(F.col("scope") != "cooperative"), ["coop", "region", "scope"])

    for name, df in [("coop_monthly", coop), ("cable_monthly", cables)]:
        df = df.orderBy(*[c for c in ["coop", "scope", "month"] if c in df.columns])
        df.write.mode("overwrite").parquet(f"{args.out.rstrip('/')}/{name}")
        df.coalesce(1).write.mode("overwrite").option("header", True).csv(f"{args.out.rstrip('/')}/{name}_csv")
    spark.stop()


if __name__ == "__main__":
    main()
