//! A query of one derived table that keeps the rows of named cables (`… FROM intervals WHERE
//! cable_id = 'K1' AND date >= '2026-01-01' AND date <= '2026-01-31'`, an analyst's look at a
//! cable's month) answered from those cables' files alone. The query is not changed; the
//! table it reads is registered as a scan of fewer files. With 40 cables a month's scan opened
//! 40 files a day to keep the rows of one; Polars' cost is per file as much as per row.
//!
//! Why the answer cannot change: every row the `WHERE` keeps has one of the named cables, and
//! every row of a cable lies in a file named with its tag ([`file_tag`]), in a file of every
//! cable ([`SHARED_TAG`]), or in a file without a tag (as earlier versions wrote them). The
//! lake refuses to write a tagged file holding another cable's row (`Lake::stage_tagged`), and
//! compaction, erasure and retention keep a file's tag with its rows. Partitions are left out
//! by the `WHERE`'s conditions on the partition key alone, decided per folder as `top_files`
//! decides them per file; every folder's value must read back as written once typed as a day
//! (or a year), the type Polars then infers for the whole table.
//!
//! Reading fewer files, it also answers where the query as written stops at a file it never
//! needed: a damaged file of another cable or of a day left out, or a day's files of an older
//! layout (Polars takes a scan's columns from its first file). The rows it returns are those
//! the query as written returns whenever that one answers. A file put in the lake by hand
//! under a cable's name is trusted to hold that cable's rows, as its folder is trusted to
//! hold its day's.
//!
//! What it takes, or the query runs as written: one plain `SELECT` (no subquery, no second
//! table: the narrowed table would answer for it too) of a table with a `cable_id` column;
//! no function in the `WHERE` (an aggregate there is computed over the rows scanned);
//! among the `WHERE`'s top-level `AND`s, `cable_id = '…'` or `cable_id IN ('…', …)`; a table
//! folder holding only partition folders of values that read back as written, and those it
//! keeps holding only Parquet files. Should the narrowed query fail (or panic), it runs as
//! written.

use std::ops::ControlFlow;
use std::path::PathBuf;

use polars::prelude::*;
use sqlparser::ast::{visit_expressions, visit_relations, BinaryOperator, Expr, Value};

use crate::lake::stats::plain_partition_value;
use crate::lake::{file_tag, tag_of, Lake, Partitioning, TableSpec, SHARED_TAG};

/// A query's table narrowed to the files of the cables it keeps.
pub(super) struct Narrowed {
    /// The table the query reads, to be registered under this name…
    pub table: &'static str,
    /// …as this scan of the files that can hold the rows it keeps.
    pub scan: LazyFrame,
    /// How many files the scan reads.
    pub files: usize,
}

/// `sql`'s table narrowed to the files of the cables it keeps, or `None` (see above).
pub(super) fn narrowed(lake: &Lake, sql: &str) -> Option<Narrowed> {
    let query = super::top_n::one_query(sql)?;
    let select = super::top_n::plain_select(&query)?;
    if !rows_kept_alone(&query, select) {
        return None;
    }
    let spec = super::top_files::lake_spec(select)?;
    if !spec.columns.iter().any(|c| c.name == "cable_id") {
        return None;
    }
    let mut conditions = Vec::new();
    conjuncts(select.selection.as_ref()?, &mut conditions);
    let tags: Vec<String> = conditions.iter().find_map(|c| cables_kept(c))?;
    let key = spec.partitioning.key();
    let on_partition: Vec<&Expr> = conditions
        .iter()
        .copied()
        .filter(|c| super::top_files::on_partition_only(c, key))
        .collect();
    let (files, partition_types) = files_of(lake, spec, &tags, &on_partition)?;
    if files.is_empty() {
        return None;
    }
    let scan = lake.scan_files(&files, partition_types).ok()??;
    Some(Narrowed {
        table: spec.name,
        scan,
        files: files.len(),
    })
}

/// Whether the rows `select` keeps depend on those rows alone: one table read once (a
/// subquery would read the narrowed table as well) and no function in the `WHERE` (Polars'
/// SQL takes an aggregate or a window there, computed over every row the scan gives, as in
/// `l_wh > avg(l_wh)`: fewer files would change it).
fn rows_kept_alone(query: &sqlparser::ast::Query, select: &sqlparser::ast::Select) -> bool {
    let mut relations = 0;
    let _ = visit_relations(query, |_| {
        relations += 1;
        ControlFlow::<()>::Continue(())
    });
    let subquery = visit_expressions(query, |e| match e {
        Expr::Subquery(_) | Expr::Exists { .. } | Expr::InSubquery { .. } => ControlFlow::Break(()),
        _ => ControlFlow::Continue(()),
    });
    let function = select.selection.as_ref().map(|filter| {
        visit_expressions(filter, |e| match e {
            Expr::Function(_) => ControlFlow::Break(()),
            _ => ControlFlow::Continue(()),
        })
    });
    relations == 1 && subquery.is_continue() && !function.is_some_and(|f| f.is_break())
}

/// The conditions `filter` joins with `AND` at its top level (brackets looked through).
fn conjuncts<'a>(filter: &'a Expr, out: &mut Vec<&'a Expr>) {
    match filter {
        Expr::Nested(e) => conjuncts(e, out),
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            conjuncts(left, out);
            conjuncts(right, out);
        }
        _ => out.push(filter),
    }
}

/// The file tags of the cables `condition` keeps when it is `cable_id = '…'` (either way
/// round) or `cable_id IN ('…', …)`.
fn cables_kept(condition: &Expr) -> Option<Vec<String>> {
    let is_cable = |e: &Expr| matches!(e, Expr::Identifier(id) if id.value == "cable_id");
    let text = |e: &Expr| match e {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) => Some(file_tag(s)),
            _ => None,
        },
        _ => None,
    };
    match condition {
        Expr::Nested(e) => cables_kept(e),
        Expr::BinaryOp {
            left,
            op: BinaryOperator::Eq,
            right,
        } => {
            if is_cable(left) {
                Some(vec![text(right)?])
            } else if is_cable(right) {
                Some(vec![text(left)?])
            } else {
                None
            }
        }
        Expr::InList {
            expr,
            list,
            negated: false,
        } if is_cable(expr) => list.iter().map(text).collect(),
        _ => None,
    }
}

/// The files of `spec` that can hold rows of the cables tagged `tags` in the partitions the
/// conditions on the partition key keep, sorted as a folder scan reads them, with the
/// partition key's type as Polars infers it from the table's folders; `None` when the table's
/// folder holds anything else (see the module's comment).
fn files_of(
    lake: &Lake,
    spec: &TableSpec,
    tags: &[String],
    on_partition: &[&Expr],
) -> Option<(Vec<PathBuf>, Option<SchemaRef>)> {
    let table = lake.table_dir(spec);
    if spec.partitioning == Partitioning::None {
        return Some((tagged_files(&table, tags)?, None));
    }
    let key = spec.partitioning.key();
    let mut values = Vec::new();
    for entry in std::fs::read_dir(&table).ok()? {
        let entry = entry.ok()?;
        if !entry.file_type().ok()?.is_dir() {
            return None;
        }
        let name = entry.file_name().into_string().ok()?;
        let value = name.strip_prefix(key)?.strip_prefix('=')?;
        if !plain_partition_value(value) {
            return None;
        }
        values.push(value.to_string());
    }
    let dtype = match spec.partitioning {
        Partitioning::Date => DataType::Date,
        _ => DataType::Int64,
    };
    let schema = Schema::from_iter([Field::new(key.into(), dtype)]);
    // Each condition in brackets: `conjuncts` looked through them, and an `OR` among them
    // must not bind to its neighbours when the filter is read again.
    let filter = on_partition
        .iter()
        .map(|c| Expr::Nested(Box::new((*c).clone())))
        .reduce(|a, b| Expr::BinaryOp {
            left: Box::new(a),
            op: BinaryOperator::And,
            right: Box::new(b),
        });
    let partitions: Vec<Option<&str>> = values.iter().map(|v| Some(v.as_str())).collect();
    // Every folder's value must read back as written once typed (as `files_kept` checks when
    // it has a filter to evaluate): Polars then infers a day or a year for the whole table,
    // and the scan of the kept files, typed so, sees what the scan of all of them sees.
    if filter.is_none() {
        let refs: Vec<&str> = values.iter().map(String::as_str).collect();
        let typed = super::top_files::partition_series(key.into(), &refs, schema.get(key)?);
        typed.as_ref()?;
    }
    let kept = super::top_files::files_kept(&partitions, filter.as_ref(), spec, &schema)?;
    let mut files = Vec::new();
    for i in kept {
        files.extend(tagged_files(
            &table.join(format!("{key}={}", values[i])),
            tags,
        )?);
    }
    files.sort();
    Some((files, Some(Arc::new(schema))))
}

/// The Parquet files right in `dir` tagged with one of `tags`, with [`SHARED_TAG`] or not at
/// all, leaving out empty files as a folder scan does; `None` when `dir` holds anything but
/// Parquet files.
fn tagged_files(dir: &std::path::Path, tags: &[String]) -> Option<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).ok()? {
        let entry = entry.ok()?;
        let name = entry.file_name().into_string().ok()?;
        if !entry.file_type().ok()?.is_file() || !name.ends_with(".parquet") {
            return None;
        }
        // Only a name as vaten writes them (`<tag>~…part-…`) says whose rows a file holds: a
        // file named otherwise (`backup~2025.parquet`, put there by hand) is read.
        let wanted = match tag_of(&name).filter(|_| name.contains("~part-")) {
            Some(tag) => tag == SHARED_TAG || tags.iter().any(|t| t == tag),
            None => true,
        };
        if wanted && entry.metadata().ok()?.len() > 0 {
            files.push(entry.path());
        }
    }
    Some(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lake::schema::INTERVALS;
    use crate::query::test_rows::{batch, Row};
    use polars::sql::SQLContext;

    /// Three days of October 2025, two cables. Each file: (day, tag, rows); `None` is a file
    /// without a tag, `Some(SHARED_TAG)` one of every cable.
    fn lake(root: &std::path::Path, files: &[(u32, Option<&str>, Vec<Row>)]) -> Lake {
        let lake = Lake::open_for_write(root, "test", std::time::Duration::ZERO).unwrap();
        let mut txn = lake.begin().unwrap();
        for (day, tag, rows) in files {
            let date = format!("2025-10-{day:02}");
            let rows = batch(*day, rows);
            match *tag {
                Some(SHARED_TAG) => lake.stage_shared(&mut txn, &INTERVALS, Some(&date), &rows),
                tag => lake.stage_tagged(&mut txn, &INTERVALS, Some(&date), tag, &rows),
            }
            .unwrap();
        }
        txn.commit().unwrap();
        lake
    }

    /// L of 1 to 1000 spread so that every sum below says which files were read.
    fn two_cables(root: &std::path::Path) -> Lake {
        lake(
            root,
            &[
                (
                    1,
                    Some("k1"),
                    vec![("a", "k1", 0, 1, 0, None, 1), ("b", "k1", 1, 2, 0, None, 2)],
                ),
                (1, Some("k2"), vec![("c", "k2", 0, 4, 0, None, 4)]),
                (2, Some("k1"), vec![("a", "k1", 0, 10, 0, Some(1), 11)]),
                (
                    2,
                    Some(SHARED_TAG),
                    vec![
                        ("b", "k1", 0, 20, 0, None, 20),
                        ("c", "k2", 0, 40, 0, None, 40),
                    ],
                ),
                (2, None, vec![("b", "k1", 1, 100, 0, None, 100)]),
                (3, Some("k2"), vec![("c", "k2", 0, 400, 0, None, 400)]),
                (3, Some("k1"), vec![("a", "k1", 2, 1000, 0, None, 1000)]),
            ],
        )
    }

    /// The query run as written, on a scan of every file of the table.
    fn as_written(lake: &Lake, spec: &TableSpec, sql: &str) -> PolarsResult<DataFrame> {
        let mut ctx = SQLContext::new();
        ctx.register(spec.name, lake.scan(spec).unwrap().unwrap());
        ctx.execute(sql)?.collect()
    }

    /// The query run on the narrowed scan alone (no way back to the query as written).
    fn on_files(lake: &Lake, sql: &str) -> DataFrame {
        let found = narrowed(lake, sql).unwrap_or_else(|| panic!("not narrowed: {sql}"));
        let mut ctx = SQLContext::new();
        ctx.register(found.table, found.scan);
        ctx.execute(sql).unwrap().collect().unwrap()
    }

    fn ints(df: &DataFrame, column: &str) -> Vec<Option<i64>> {
        let c = df.column(column).unwrap().cast(&DataType::Int64).unwrap();
        c.i64().unwrap().iter().collect()
    }

    #[test]
    fn a_cables_rows_come_from_its_own_shared_and_untagged_files_and_no_other() {
        let dir = tempfile::tempdir().unwrap();
        let lake = two_cables(dir.path());
        // A file of the other cable that no reader can read: the narrowed query never opens it.
        let bad = lake
            .table_dir(&INTERVALS)
            .join("date=2025-10-02/k2~part-bad-1.parquet");
        std::fs::write(&bad, b"not a parquet file").unwrap();
        // A copy of k1's file of 3 October under a name vaten does not write: read, whatever
        // precedes its `~`.
        let day3 = lake.table_dir(&INTERVALS).join("date=2025-10-03");
        let k1 = lake.files(&INTERVALS, Some("2025-10-03")).unwrap();
        let k1 = k1
            .iter()
            .find(|f| f.to_string_lossy().contains("/k1~"))
            .unwrap();
        std::fs::copy(k1, day3.join("k2~backup.parquet")).unwrap();
        let sql = "SELECT ean, sum(l_wh) AS l_wh FROM intervals \
                   WHERE cable_id = 'k1' AND date >= '2025-10-02' GROUP BY ean ORDER BY ean";
        assert_eq!(narrowed(&lake, sql).unwrap().files, 5);
        let df = crate::query::run(&lake, sql).unwrap();
        // a: 10 (its file) + 1000 (its file) + 1000 (the copy); b: 20 (the shared file) + 100
        // (untagged).
        assert_eq!(ints(&df, "l_wh"), [Some(2010), Some(120)]);
        assert!(
            as_written(&lake, &INTERVALS, sql).is_err(),
            "the unreadable file is read as written"
        );
    }

    #[test]
    fn narrowed_queries_answer_as_the_query_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let lake = two_cables(dir.path());
        // Each query with the L values (or count) worked out by hand from `two_cables`.
        let cases: [(&str, &str, Vec<i64>); 6] = [
            // No file of its own; the shared and the untagged file hold none of its rows.
            (
                "SELECT count(*) AS n FROM intervals WHERE cable_id = 'k9'",
                "n",
                vec![0],
            ),
            (
                "SELECT * FROM intervals WHERE 'k2' = cable_id ORDER BY l_wh",
                "l_wh",
                vec![4, 40, 400],
            ),
            (
                "SELECT ean, l_wh, date FROM intervals WHERE cable_id IN ('k1', 'k2') \
                 AND date = '2025-10-02' ORDER BY l_wh",
                "l_wh",
                vec![10, 20, 40, 100],
            ),
            (
                "SELECT count(*) AS n FROM intervals \
                 WHERE (cable_id = 'k1' AND l_wh > 5) AND NOT date = '2025-10-03'",
                "n",
                vec![3],
            ),
            (
                "SELECT max(l_wh) AS m FROM intervals \
                 WHERE cable_id = 'k1' AND (date = '2025-10-01' OR date = '2025-10-03')",
                "m",
                vec![1000],
            ),
            (
                "SELECT ean, interval_start, l_wh FROM intervals i WHERE i.l_wh < 50 \
                 AND cable_id = 'k2' ORDER BY l_wh DESC LIMIT 1",
                "l_wh",
                vec![40],
            ),
        ];
        for (sql, column, expected) in cases {
            let ours = on_files(&lake, sql);
            let expected: Vec<Option<i64>> = expected.into_iter().map(Some).collect();
            assert_eq!(ints(&ours, column), expected, "{sql}");
            // Same columns, types and rows as the scan of every file gives.
            let written = as_written(&lake, &INTERVALS, sql).unwrap();
            assert_eq!(ours.schema(), written.schema(), "{sql}");
            assert!(ours.equals_missing(&written), "{sql}\n{ours}\n{written}");
        }
    }

    #[test]
    fn conditions_on_the_day_keep_their_brackets() {
        let dir = tempfile::tempdir().unwrap();
        let lake = two_cables(dir.path());
        // 1 or 3 October, and from 2 October: 3 October alone, where k1 has one file.
        let sql = "SELECT l_wh FROM intervals WHERE cable_id = 'k1' \
                   AND (date = '2025-10-01' OR date = '2025-10-03') AND date >= '2025-10-02'";
        assert_eq!(narrowed(&lake, sql).unwrap().files, 1);
        assert_eq!(ints(&on_files(&lake, sql), "l_wh"), [Some(1000)]);
    }

    /// `consumption_daily` rows (EAN, cable, day, L), the other columns zero, false or "x".
    fn daily(rows: &[(&str, &str, chrono::NaiveDate, i64)]) -> arrow::array::RecordBatch {
        use crate::lake::schema::{ColType, CONSUMPTION_DAILY};
        use arrow::array::{ArrayRef, BooleanArray, Date32Array, Int64Array, StringArray};
        let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
        let columns: Vec<ArrayRef> = CONSUMPTION_DAILY
            .columns
            .iter()
            .map(|c| -> ArrayRef {
                match (c.ty, c.name) {
                    (ColType::Utf8, "ean") => {
                        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0)))
                    }
                    (ColType::Utf8, "cable_id") => {
                        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1)))
                    }
                    (ColType::Utf8, _) => {
                        Arc::new(StringArray::from_iter_values(rows.iter().map(|_| "x")))
                    }
                    (ColType::Date, _) => Arc::new(Date32Array::from_iter_values(
                        rows.iter().map(|r| (r.2 - epoch).num_days() as i32),
                    )),
                    (ColType::Int64, "l_wh") => {
                        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.3)))
                    }
                    (ColType::Int64, _) => {
                        Arc::new(Int64Array::from_iter_values(rows.iter().map(|_| 0)))
                    }
                    (ColType::Bool, _) => {
                        Arc::new(BooleanArray::from_iter(rows.iter().map(|_| Some(false))))
                    }
                    other => panic!("no {other:?} column in consumption_daily"),
                }
            })
            .collect();
        arrow::array::RecordBatch::try_new(CONSUMPTION_DAILY.arrow_schema(), columns).unwrap()
    }

    #[test]
    fn a_table_by_year_is_narrowed_to_the_cables_years_and_refuses_other_cables_rows() {
        use crate::lake::schema::CONSUMPTION_DAILY;
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open_for_write(dir.path(), "test", std::time::Duration::ZERO).unwrap();
        let day = |y, m, d| chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap();
        let mut txn = lake.begin().unwrap();
        for (year, cable, rows) in [
            (2025, "k1", daily(&[("a", "k1", day(2025, 12, 31), 1)])),
            (2026, "k1", daily(&[("a", "k1", day(2026, 1, 1), 10)])),
            (2026, "k2", daily(&[("c", "k2", day(2026, 1, 1), 100)])),
        ] {
            lake.stage_tagged_months(&mut txn, &CONSUMPTION_DAILY, (year, 1, 12), cable, &rows)
                .unwrap();
        }
        let mixed = daily(&[
            ("a", "k1", day(2026, 1, 2), 5),
            ("c", "k2", day(2026, 1, 2), 7),
        ]);
        let err = lake
            .stage_tagged_months(&mut txn, &CONSUMPTION_DAILY, (2026, 1, 12), "k1", &mixed)
            .unwrap_err();
        assert!(err.to_string().contains("another cable"), "{err}");
        txn.commit().unwrap();
        let sql = "SELECT * FROM consumption_daily WHERE cable_id = 'k1' AND year >= 2026";
        assert_eq!(narrowed(&lake, sql).unwrap().files, 1);
        let ours = on_files(&lake, sql);
        assert_eq!(ints(&ours, "l_wh"), [Some(10)]);
        let written = as_written(&lake, &CONSUMPTION_DAILY, sql).unwrap();
        // The year typed as Polars infers it from every folder.
        assert_eq!(ours.schema(), written.schema());
        assert!(ours.equals_missing(&written), "{ours}\n{written}");
    }

    #[test]
    fn queries_that_read_more_than_named_cables_are_not_narrowed() {
        let dir = tempfile::tempdir().unwrap();
        let lake = two_cables(dir.path());
        let cases = [
            // Either cable's rows: k1's six and c's 400.
            (
                "SELECT count(*) AS n FROM intervals WHERE cable_id = 'k1' OR l_wh = 400",
                7,
            ),
            // The subquery reads k2's rows (L 4, 40, 400, so 604, 640, 1000): a's 1000 is
            // among them. Narrowed to k1's files it would see c's 40 alone and count none.
            (
                "SELECT count(*) AS n FROM intervals WHERE cable_id = 'k1' \
                 AND l_wh IN (SELECT l_wh + 600 FROM intervals WHERE cable_id = 'k2')",
                1,
            ),
            // Not a text constant.
            (
                "SELECT count(*) AS n FROM intervals WHERE cable_id = lower('K1')",
                6,
            ),
            // An aggregate in the `WHERE` is over every row: the sum of L is 1577, so k1's
            // 20, 100 and 1000 are above a 150th of it. Over k1's, shared and untagged files
            // it would be 1173, and 10 would count too.
            (
                "SELECT count(*) AS n FROM intervals WHERE cable_id = 'k1' \
                 AND l_wh * 150 > sum(l_wh)",
                3,
            ),
            (
                "SELECT count(*) AS n FROM intervals WHERE cable_id NOT IN ('k2')",
                6,
            ),
        ];
        for (sql, n) in cases {
            assert!(narrowed(&lake, sql).is_none(), "{sql}");
            let df = crate::query::run(&lake, sql).unwrap();
            assert_eq!(ints(&df, "n"), [Some(n)], "{sql}");
        }
        // A folder whose day does not read back as written, with a file: the whole table's
        // scan then types the day as text.
        let odd = lake.table_dir(&INTERVALS).join("date=2025-10-4");
        std::fs::create_dir(&odd).unwrap();
        let one = lake
            .files(&INTERVALS, Some("2025-10-03"))
            .unwrap()
            .remove(0);
        std::fs::copy(&one, odd.join("k1~part-odd-1.parquet")).unwrap();
        assert!(narrowed(&lake, "SELECT * FROM intervals WHERE cable_id = 'k1'").is_none());
    }

    #[test]
    fn a_cables_file_refuses_another_cables_rows() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open_for_write(dir.path(), "test", std::time::Duration::ZERO).unwrap();
        let mut txn = lake.begin().unwrap();
        let rows = batch(
            1,
            &[("a", "k1", 0, 1, 0, None, 1), ("c", "k2", 0, 4, 0, None, 4)],
        );
        let err = lake
            .stage_tagged(&mut txn, &INTERVALS, Some("2025-10-01"), Some("k1"), &rows)
            .unwrap_err();
        assert!(err.to_string().contains("another cable"), "{err}");
        let own = batch(1, &[("a", "k1", 0, 1, 0, None, 1)]);
        lake.stage_tagged(&mut txn, &INTERVALS, Some("2025-10-01"), Some("k1"), &own)
            .unwrap();
    }
}
