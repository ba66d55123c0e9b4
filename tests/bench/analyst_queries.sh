# Sourced by tests/bench/transform_year.sh once the lake in $work holds a year of intervals:
# the three typical analyst queries of #16, each run by `vaten query` and by DuckDB (2 threads)
# on the same files, cold (the first run, the files read from the disk: see `evict`) and warm
# (the median of three more runs). Before a ratio is printed, vaten's answer must equal DuckDB's, row for row.
# Needs: bin, work, py (see fake_grid.sh). Sets: queries_same (empty when an answer differed).
year_from=$("$py" -c "import duckdb; print(duckdb.connect().execute('SET enable_progress_bar = false').execute(\"SELECT max(date) - INTERVAL 364 DAY FROM read_parquet('$work/lake/intervals/*/*.parquet', hive_partitioning = true)\").fetchone()[0].date())")
# A whole calendar month inside the year: the third month starting after the year's first day.
read -r month_from month_to < <("$py" -c "
import datetime as dt
d = dt.date.fromisoformat('$year_from').replace(day=1)
m = (d + dt.timedelta(days=62)).replace(day=1)
n = (m + dt.timedelta(days=32)).replace(day=1)
print(m, n - dt.timedelta(days=1))")
cable=$("$py" -c "import duckdb; print(duckdb.connect().execute('SET enable_progress_bar = false').execute(\"SELECT min(cable_id) FROM read_parquet('$work/lake/intervals/*/*.parquet', hive_partitioning = true)\").fetchone()[0])")
names=(daily_sums_of_a_year cable_quarter_hours_of_a_month top_10_peaks_of_a_year)
sqls=(
  "SELECT ean, date, sum(l_wh) AS l_wh, sum(t_wh) AS t_wh, sum(v_wh) AS v_wh FROM intervals WHERE date >= '$year_from' GROUP BY ean, date"
  "SELECT ean, interval_start, l_wh, t_wh, v_wh, l_quality FROM intervals WHERE cable_id = '$cable' AND date >= '$month_from' AND date <= '$month_to'"
  "SELECT ean, interval_start, l_wh FROM intervals WHERE date >= '$year_from' ORDER BY l_wh DESC, ean, interval_start LIMIT 10"
)
cat > "$work/duck_query.py" <<PY
import duckdb, sys, time
import pyarrow  # loaded before the clock starts: the answer is handed over as Arrow
con = duckdb.connect().execute('SET enable_progress_bar = false')
con.execute("SET threads = 2")
con.execute("CREATE VIEW intervals AS SELECT * FROM read_parquet('$work/lake/intervals/*/*.parquet', hive_partitioning = true)")
t = time.monotonic()
# Into Arrow, as vaten hands its answer to its writer: no Python object per value.
con.sql(sys.argv[1]).to_arrow_table()
print(round(time.monotonic() - t, 3))
PY
cat > "$work/same_query.py" <<PY
import duckdb, sys
con = duckdb.connect().execute('SET enable_progress_bar = false')
con.execute("CREATE VIEW intervals AS SELECT * FROM read_parquet('$work/lake/intervals/*/*.parquet', hive_partitioning = true)")
con.execute(f"CREATE TABLE d AS {sys.argv[1]}")
con.execute("CREATE TABLE v AS SELECT * FROM read_parquet('$work/query_out.parquet')")
n = con.execute("SELECT count(*) FROM v").fetchone()[0]
diff = con.execute("SELECT count(*) FROM ((SELECT * FROM d EXCEPT ALL SELECT * FROM v) UNION ALL (SELECT * FROM v EXCEPT ALL SELECT * FROM d))").fetchone()[0]
print(f"{n} rows, {diff} differ from DuckDB's")
sys.exit(1 if diff or not n else 0)
PY
# Cold means from the disk for both: before each tool's first run of a query the intervals files
# leave the page cache (posix_fadvise DONTNEED, no root needed; they are clean once written).
# Without it the second tool's "cold" run found what the first one had just read.
cat > "$work/evict.py" <<PY
import glob, os
for f in glob.glob('$work/lake/intervals/**/*.parquet', recursive=True):
    fd = os.open(f, os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)
PY
evict() { "$py" "$work/evict.py"; }
median() { printf '%s\n' "$@" | sort -g | sed -n 2p; }
queries_same=yes
query_lines=()
for i in 0 1 2; do
  sql=${sqls[$i]}
  v_times=(); d_times=()
  for run in 1 2 3 4; do
    [ "$run" = 1 ] && evict
    /usr/bin/time -f '%e %M' -o "$work/time_q" "$bin" --config "$work/vaten.toml" query --format parquet --output "$work/query_out.parquet" "$sql" 2> "$work/log_q" \
      || { tail -3 "$work/log_q"; exit 1; }
    read -r secs kib < "$work/time_q"
    v_times+=("$secs"); [ "$run" = 1 ] && q_kib=$kib
    [ "$run" = 1 ] && evict
    d_times+=("$("$py" "$work/duck_query.py" "$sql")")
  done
  if ! same=$("$py" "$work/same_query.py" "$sql"); then
    queries_same=""
    query_lines+=("${names[$i]}: $same; no ratio")
    continue
  fi
  warm_v=$(median "${v_times[@]:1}"); warm_d=$(median "${d_times[@]:1}")
  query_lines+=("${names[$i]}: $same; vaten cold ${v_times[0]} s warm $warm_v s (peak $((q_kib / 1024)) MiB); duckdb cold ${d_times[0]} s warm $warm_d s; ratio cold $("$py" -c "print(round(${v_times[0]} / ${d_times[0]}, 2))") warm $("$py" -c "print(round($warm_v / $warm_d, 2))")")
done
