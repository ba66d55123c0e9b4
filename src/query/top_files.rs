//! A top N query (`… ORDER BY key DESC … LIMIT N`, the shape `top_n` accepts) answered from
//! the few files that can hold it, chosen by their footers alone. A year's top 10 of
//! `intervals` otherwise opens all 14,640 files at least once; Polars spends ~2 s on that
//! before it reads a value.
//!
//! Why the answer cannot change (descending; ascending is the mirror image): a file's footer
//! gives a maximum no row of the file exceeds (the format lets it overstate, never
//! understate). Let m be the N-th largest of these maxima over the files the `WHERE` keeps. A
//! file whose maximum is below m holds no row with a key of m or more, so every such row lies
//! in the other files, and the query runs over those with `key >= m` added (`key <= m`
//! ascending). If N rows or more have a key of m or more, the top N are among them, and the
//! answer is the query's answer. Exact footers guarantee that (the N files with the largest
//! maxima each hold a row with key m or more); should fewer than N rows come back, a footer
//! overstated, and the query goes on without the footers (see below). Rows tied on every
//! ORDER BY term may come in any order, as in any SQL engine.
//!
//! That needs a `WHERE` that decides a whole file at once: it may name only the partition key
//! (compared with constants, `AND`, `OR`, `NOT`, `BETWEEN`, `IN`, `IS NULL`), whose value is
//! the same for every row of a file. It is evaluated by Polars on one row per file, with the
//! partition key typed as the table's scan types it (a folder whose value, once typed, does not
//! read back as its text, such as `date=2026-10-1`, is not decided). Anything else, a file
//! whose footer cannot say for certain (see `Lake::column_ranges`; files of differing schemas
//! among them), or fewer than N files with rows, and the query goes on to `top_n` (a first
//! pass over the key) or runs as written. So does a narrowed query that returns fewer than N
//! rows.

use polars::prelude::*;
use polars::sql::SQLContext;
use sqlparser::ast::{BinaryOperator, Expr, SetExpr, TableFactor, UnaryOperator};

use crate::lake::schema::ALL_TABLES;
use crate::lake::{Lake, Partitioning};

/// A top N query narrowed to the files that can hold its answer.
pub(super) struct Narrowed {
    /// The table the query reads, to be registered under this name…
    pub table: &'static str,
    /// …as this scan of the candidate files.
    pub scan: LazyFrame,
    /// The query with the bound on its key added.
    pub sql: String,
    /// How many rows the query asks for (N).
    pub rows: usize,
    /// How many files the scan reads, of how many the table has.
    pub files: (usize, usize),
}

/// `sql` narrowed to the files of its table that can hold its answer, or `None` (see above).
pub(super) fn narrowed(lake: &Lake, ctx: &mut SQLContext, sql: &str) -> Option<Narrowed> {
    let mut query = super::top_n::one_query(sql)?;
    let (first, n) = super::top_n::top_n_shape(&query)?;
    let descending = first.options.asc == Some(false);
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    let (spec, schema) = lake_table(select, ctx)?;
    let Expr::Identifier(key) = &first.expr else {
        return None;
    };
    let partition_key = spec.partitioning.key();
    if key.value == partition_key {
        return None;
    }
    if let Some(filter) = &select.selection {
        if !on_partition_only(filter, partition_key) {
            return None;
        }
    }
    // The key must be read as a signed integer (not, say, a duration stored as one, nor an
    // unsigned integer whose Parquet statistics were kept as signed).
    if !schema.get(&key.value)?.is_signed_integer() {
        return None;
    }
    let files = lake.column_ranges(spec, &key.value)?;
    let all_files = files.len();
    let partition_types = if spec.partitioning == Partitioning::None {
        None
    } else {
        let dtype = schema.get(partition_key)?.clone();
        Some(Arc::new(Schema::from_iter([Field::new(
            partition_key.into(),
            dtype,
        )])))
    };
    let partitions: Vec<Option<&str>> = files.iter().map(|f| f.partition.as_deref()).collect();
    let kept = files_kept(&partitions, select.selection.as_ref(), spec, &schema)?;
    // Each kept file's best key: its largest (descending) or its smallest.
    let mut best: Vec<(i64, usize)> = kept
        .iter()
        .filter_map(|&i| {
            let (low, high) = files[i].range?;
            Some((if descending { high } else { low }, i))
        })
        .collect();
    let n = usize::try_from(n).ok()?;
    if best.len() < n {
        return None;
    }
    best.sort_unstable_by_key(|&(value, _)| value);
    if descending {
        best.reverse();
    }
    let bound = best[n - 1].0;
    let mut candidates: Vec<std::path::PathBuf> = best
        .iter()
        .filter(|&&(value, _)| {
            if descending {
                value >= bound
            } else {
                value <= bound
            }
        })
        .map(|&(_, i)| files[i].path.clone())
        .collect();
    // In the folder scan's order.
    candidates.sort();
    super::top_n::with_bound(&mut query, &first.expr, i128::from(bound), descending)?;
    let scan = lake.scan_files(&candidates, partition_types).ok()??;
    Some(Narrowed {
        table: spec.name,
        scan,
        sql: query.to_string(),
        rows: n,
        files: (candidates.len(), all_files),
    })
}

/// Runs a narrowed query: its one table (the `WHERE` names no other) as the candidates' scan.
/// Fewer than N rows is an error: a footer overstated its files' keys (the format allows a
/// maximum above the largest value), and the query must run another way. N rows, each with a
/// key as good as the bound, are the answer: every row that good lies in a candidate file.
pub(super) fn run(found: Narrowed) -> PolarsResult<DataFrame> {
    let mut candidates = SQLContext::new();
    candidates.register(found.table, found.scan);
    let df = super::collect(candidates.execute(&found.sql)?)?;
    if df.height() < found.rows {
        polars_bail!(ComputeError: "the files chosen by their footers hold fewer rows than asked for");
    }
    Ok(df)
}

/// Whether `filter` names no column but `partition_key`, compared only with constants.
pub(super) fn on_partition_only(filter: &Expr, partition_key: &str) -> bool {
    let is_key = |e: &Expr| matches!(e, Expr::Identifier(id) if id.value == partition_key);
    let constant = |e: &Expr| matches!(e, Expr::Value(_) | Expr::TypedString { .. });
    let recurse = |e: &Expr| on_partition_only(e, partition_key);
    match filter {
        Expr::Nested(e) => recurse(e),
        Expr::UnaryOp {
            op: UnaryOperator::Not,
            expr,
        } => recurse(expr),
        Expr::BinaryOp { left, op, right } => match op {
            BinaryOperator::And | BinaryOperator::Or => recurse(left) && recurse(right),
            BinaryOperator::Eq
            | BinaryOperator::NotEq
            | BinaryOperator::Lt
            | BinaryOperator::LtEq
            | BinaryOperator::Gt
            | BinaryOperator::GtEq => {
                (is_key(left) && constant(right)) || (constant(left) && is_key(right))
            }
            _ => false,
        },
        Expr::Between {
            expr, low, high, ..
        } => is_key(expr) && constant(low) && constant(high),
        Expr::InList { expr, list, .. } => is_key(expr) && list.iter().all(constant),
        Expr::IsNull(e) | Expr::IsNotNull(e) => is_key(e),
        _ => false,
    }
}

/// The lake's table a plain select reads (one table, named by one identifier).
pub(super) fn lake_spec(
    select: &sqlparser::ast::Select,
) -> Option<&'static crate::lake::TableSpec> {
    let TableFactor::Table { name, .. } = &select.from.first()?.relation else {
        return None;
    };
    let [table_name] = name.0.as_slice() else {
        return None;
    };
    let table_name = table_name.as_ident()?.value.as_str();
    ALL_TABLES.iter().find(|t| t.name == table_name)
}

/// The lake's table a plain select reads ([`lake_spec`]), and the schema its registered scan
/// has: the types the query sees, the partition key's among them.
pub(super) fn lake_table(
    select: &sqlparser::ast::Select,
    ctx: &mut SQLContext,
) -> Option<(&'static crate::lake::TableSpec, Schema)> {
    let spec = lake_spec(select)?;
    let schema = ctx
        .execute(&format!("SELECT * FROM {}", spec.name))
        .ok()?
        .collect_schema()
        .ok()?;
    Some((spec, schema.as_ref().clone()))
}

/// The indices of the files whose rows `filter` keeps, evaluated by Polars on one row per
/// file (`partitions` holds each file's partition value), the partition key typed as `schema`
/// (the table's scan) types it. Every file without a filter.
pub(super) fn files_kept(
    partitions: &[Option<&str>],
    filter: Option<&Expr>,
    spec: &crate::lake::TableSpec,
    schema: &Schema,
) -> Option<Vec<usize>> {
    let Some(filter) = filter else {
        return Some((0..partitions.len()).collect());
    };
    let table = spec.name;
    let name = spec.partitioning.key();
    let dtype = schema.get(name)?;
    let values: Vec<&str> = partitions.iter().copied().collect::<Option<_>>()?;
    let typed = partition_series(name.into(), &values, dtype)?;
    let index: Vec<u32> = (0..u32::try_from(values.len()).ok()?).collect();
    let frame = DataFrame::new_infer_height(vec![
        typed.into_column(),
        Column::new("__vaten_file".into(), index),
    ])
    .ok()?;
    let mut one_row_per_file = SQLContext::new();
    one_row_per_file.register(table, frame.lazy());
    let kept = one_row_per_file
        .execute(&format!("SELECT __vaten_file FROM {table} WHERE {filter}"))
        .ok()?
        .collect()
        .ok()?;
    let kept = kept.column("__vaten_file").ok()?.u32().ok()?;
    // In the files' order, whatever order the filter returns them in.
    let mut kept: Vec<usize> = kept.into_no_null_iter().map(|i| i as usize).collect();
    kept.sort_unstable();
    Some(kept)
}

/// Partition values as folders name them, typed as the table's scan types its partition key.
/// `None` for a value whose typed form does not read back as the folder's text: `date=2025-1-5`
/// and `year=02025` are days and years Polars reads, but equal to `2025-01-05` and `2025`, and
/// a group-by over them would merge what folders keep apart.
pub(super) fn partition_series(
    name: PlSmallStr,
    values: &[&str],
    dtype: &DataType,
) -> Option<Series> {
    let typed = if dtype == &DataType::Date {
        // A day as its folder names it (Polars' cast from text to a date is deprecated).
        let days: Vec<chrono::NaiveDate> = values
            .iter()
            .map(|v| chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d").ok())
            .collect::<Option<_>>()?;
        Series::new(name, days)
    } else {
        Series::new(name, values).strict_cast(dtype).ok()?
    };
    let back = typed.cast(&DataType::String).ok()?;
    let back = back.str().ok()?;
    let same = back.len() == values.len()
        && back
            .iter()
            .zip(values)
            .all(|(typed, folder)| typed == Some(*folder));
    same.then_some(typed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lake::schema::GRID_READINGS;
    use crate::lake::Lake;
    use crate::received::rows::{readings_batch, GridReading};

    fn reading(ean: &str, day: u32, hour: i64, import_wh: i64) -> GridReading {
        GridReading {
            ean: ean.into(),
            meter_id: "M".into(),
            t_us: (i64::from(day) * 24 + hour) * 3_600_000_000,
            import_wh,
            export_wh: 0,
            quality: "measured".into(),
            received_at_us: 0,
            delivery_seq: 1,
            cursor: "c".into(),
            date: chrono::NaiveDate::from_ymd_opt(2026, 10, day).unwrap(),
        }
    }

    /// A lake with one file per `(day, imports)`: readings of "a", "b", … an hour apart.
    fn lake(root: &std::path::Path, files: &[(u32, Vec<i64>)]) -> Lake {
        let lake = Lake::open_for_write(root, "test", std::time::Duration::ZERO).unwrap();
        let mut txn = lake.begin().unwrap();
        for (f, (day, imports)) in files.iter().enumerate() {
            let rows: Vec<GridReading> = imports
                .iter()
                .enumerate()
                .map(|(i, &wh)| reading(&format!("{f}-{i}"), *day, i as i64, wh))
                .collect();
            let date = rows[0].date.to_string();
            let batch = readings_batch(&rows, "r");
            lake.stage_batch(&mut txn, &GRID_READINGS, Some(&date), &batch)
                .unwrap();
        }
        txn.commit().unwrap();
        lake
    }

    fn context(lake: &Lake) -> SQLContext {
        let ctx = SQLContext::new();
        ctx.register("grid_readings", lake.scan(&GRID_READINGS).unwrap().unwrap());
        ctx
    }

    fn imports(df: &DataFrame) -> Vec<i64> {
        let column = df.column("import_wh").unwrap().i64().unwrap();
        column.into_no_null_iter().collect()
    }

    /// Files: 1 Oct [5, 9] and [40, 1]; 2 Oct [7, 30] and [2, 3]; 3 Oct [50].
    fn five_files(root: &std::path::Path) -> Lake {
        lake(
            root,
            &[
                (1, vec![5, 9]),
                (1, vec![40, 1]),
                (2, vec![7, 30]),
                (2, vec![2, 3]),
                (3, vec![50]),
            ],
        )
    }

    #[test]
    fn the_top_comes_from_the_files_whose_footers_can_hold_it() {
        let dir = tempfile::tempdir().unwrap();
        let lake = five_files(dir.path());
        let mut ctx = context(&lake);
        // From 2 Oct: maxima 30, 3, 50; the 2nd largest is 30: two files, rows >= 30.
        let sql = "SELECT ean, import_wh FROM grid_readings WHERE date >= '2026-10-02' \
                   ORDER BY import_wh DESC, ean LIMIT 2";
        let found = narrowed(&lake, &mut ctx, sql).unwrap();
        assert_eq!(found.files, (2, 5));
        assert!(found.sql.contains("import_wh >= 30"), "{}", found.sql);
        let answer = run(found).unwrap();
        assert_eq!(imports(&answer), [50, 30]);
        // Ascending over every day: minima 5, 1, 7, 2, 50; the 3rd smallest is 5, three files.
        let sql = "SELECT * FROM grid_readings ORDER BY import_wh, ean LIMIT 3";
        let found = narrowed(&lake, &mut ctx, sql).unwrap();
        assert_eq!(found.files, (3, 5));
        let answer = run(found).unwrap();
        assert_eq!(imports(&answer), [1, 2, 3]);
        // `SELECT *` keeps the partition key as a column of the same type.
        assert_eq!(answer.column("date").unwrap().dtype(), &DataType::Date);
        // Only 1 and 3 October: maxima 9, 40, 50; top 1 reads one file.
        let sql = "SELECT import_wh FROM grid_readings \
                   WHERE date IN ('2026-10-01', '2026-10-03') AND NOT date = '2026-10-03' \
                   ORDER BY import_wh DESC LIMIT 1";
        let found = narrowed(&lake, &mut ctx, sql).unwrap();
        assert_eq!(found.files, (1, 5));
        let answer = run(found).unwrap();
        assert_eq!(imports(&answer), [40]);
    }

    #[test]
    fn a_filter_on_rows_or_too_few_files_is_not_narrowed_by_footers() {
        let dir = tempfile::tempdir().unwrap();
        let lake = five_files(dir.path());
        let mut ctx = context(&lake);
        for sql in [
            // A row's own value decides, not its file's.
            "SELECT * FROM grid_readings WHERE import_wh < 40 ORDER BY import_wh DESC LIMIT 1",
            "SELECT * FROM grid_readings WHERE date >= '2026-10-01' OR import_wh < 40 \
             ORDER BY import_wh DESC LIMIT 1",
            // Six rows wanted, five files.
            "SELECT * FROM grid_readings ORDER BY import_wh DESC LIMIT 6",
            // Only a name of the one-row-per-file frame, no column of the table.
            "SELECT * FROM grid_readings WHERE __vaten_file < 3 ORDER BY import_wh DESC LIMIT 1",
            // The key is the partition key (no footer has it either).
            "SELECT * FROM grid_readings ORDER BY date DESC LIMIT 1",
            // A later term worked out over the rows kept.
            "SELECT * FROM grid_readings ORDER BY import_wh DESC, ean = max(ean), ean LIMIT 1",
        ] {
            assert!(narrowed(&lake, &mut ctx, sql).is_none(), "{sql}");
        }
        // Still answered, by the other ways: 30 is the largest import below 40.
        let sql =
            "SELECT * FROM grid_readings WHERE import_wh < 40 ORDER BY import_wh DESC LIMIT 1";
        let answer = super::super::answer(Some(&lake), &mut ctx, sql).unwrap();
        assert_eq!(imports(&answer), [30]);
    }

    #[test]
    fn a_key_the_scan_reads_as_no_signed_integer_is_not_narrowed_by_footers() {
        let dir = tempfile::tempdir().unwrap();
        let lake = five_files(dir.path());
        let sql = "SELECT * FROM grid_readings ORDER BY import_wh DESC LIMIT 1";
        assert!(narrowed(&lake, &mut context(&lake), sql).is_some());
        // The footers hold signed statistics; a scan that reads the column as unsigned (or
        // as a float) orders it otherwise, so they must not narrow it.
        for dtype in [DataType::UInt64, DataType::Float64] {
            let mut ctx = SQLContext::new();
            let scan = lake.scan(&GRID_READINGS).unwrap().unwrap();
            let cast = scan.with_column(col("import_wh").cast(dtype.clone()));
            ctx.register("grid_readings", cast);
            assert!(narrowed(&lake, &mut ctx, sql).is_none(), "{dtype}");
        }
    }

    /// Files of random sizes and keys over five days (many ties), both directions, limits
    /// and day filters: the answer from the candidate files equals the query as written.
    #[test]
    fn answers_from_the_candidate_files_equal_the_full_sort() {
        let mut state = 0x9e37_79b9_u64;
        let mut next = |m: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % m
        };
        let files: Vec<(u32, Vec<i64>)> = (0..40)
            .map(|_| {
                let day = 1 + next(5) as u32;
                let rows = 1 + next(20) as usize;
                (day, (0..rows).map(|_| next(30) as i64 - 5).collect())
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let lake = lake(dir.path(), &files);
        let mut ctx = context(&lake);
        let mut narrowed_count = 0;
        for order in ["import_wh DESC", "import_wh"] {
            for limit in [1, 7, 25] {
                for filter in [
                    "",
                    "WHERE date >= '2026-10-03'",
                    "WHERE date BETWEEN '2026-10-02' AND '2026-10-03' OR date = '2026-10-05'",
                ] {
                    let sql = format!(
                        "SELECT ean, t, import_wh FROM grid_readings {filter} \
                         ORDER BY {order}, ean, t LIMIT {limit}"
                    );
                    let written = super::super::collect(ctx.execute(&sql).unwrap()).unwrap();
                    if let Some(found) = narrowed(&lake, &mut ctx, &sql) {
                        narrowed_count += 1;
                        assert!(found.files.0 < found.files.1, "{sql}: {:?}", found.files);
                        let answer = run(found).unwrap();
                        assert!(answer.equals_missing(&written), "{sql}");
                        assert_eq!(answer.height(), limit, "{sql}");
                    }
                }
            }
        }
        // 16 of the 18 have at least as many files with rows on their days as their limit.
        assert_eq!(narrowed_count, 16);
    }

    /// One row per file decides which files a filter on the partition key keeps, with the key
    /// typed as the scan types it: years as integers (as text, '2' sorts after '10'), days as
    /// dates.
    #[test]
    fn a_filter_on_the_partition_key_keeps_whole_files() {
        use crate::lake::schema::{CABLE_BALANCE_DAILY, INTERVALS};
        let years = [Some("2"), Some("10"), Some("2026")];
        let types = |name: &str, dtype| Schema::from_iter([Field::new(name.into(), dtype)]);
        let filter = |sql: &str| {
            let query = super::super::top_n::one_query(sql).unwrap();
            let SetExpr::Select(select) = *query.body else {
                panic!()
            };
            select.selection.unwrap()
        };
        let yearly = (&CABLE_BALANCE_DAILY, types("year", DataType::Int64));
        let where_ = filter("SELECT * FROM t WHERE year >= 10 AND NOT year IN (2026)");
        let kept = files_kept(&years, Some(&where_), yearly.0, &yearly.1);
        assert_eq!(kept, Some(vec![1]));
        let daily = (&INTERVALS, types("date", DataType::Date));
        let days = [Some("2026-09-30"), Some("2026-10-01")];
        let where_ = filter("SELECT * FROM t WHERE date BETWEEN '2026-10-01' AND '2026-10-31'");
        let kept = files_kept(&days, Some(&where_), daily.0, &daily.1);
        assert_eq!(kept, Some(vec![1]));
        // A folder name that is no day, or a day or year written otherwise than the typed
        // value reads back: not narrowed.
        for odd in ["2026-13-01", "2026-10-1"] {
            assert_eq!(
                files_kept(&[Some(odd)], Some(&where_), daily.0, &daily.1),
                None,
                "{odd}"
            );
        }
        let where_ = filter("SELECT * FROM t WHERE year >= 10");
        assert_eq!(
            files_kept(&[Some("02026")], Some(&where_), yearly.0, &yearly.1),
            None
        );
    }

    #[test]
    fn fewer_rows_than_asked_for_from_the_candidates_is_an_error_not_an_answer() {
        let dir = tempfile::tempdir().unwrap();
        let lake = five_files(dir.path());
        let mut ctx = context(&lake);
        let sql = "SELECT import_wh FROM grid_readings ORDER BY import_wh DESC LIMIT 2";
        let mut found = narrowed(&lake, &mut ctx, sql).unwrap();
        // As if a footer had overstated its maximum: the bound lets one row through.
        found.sql = found.sql.replace(">= 40", ">= 41");
        assert!(run(found).is_err());
        // And the query is still answered (by the first pass over the key): 50 and 40.
        let answer = super::super::answer(Some(&lake), &mut ctx, sql).unwrap();
        assert_eq!(imports(&answer), [50, 40]);
    }
}
