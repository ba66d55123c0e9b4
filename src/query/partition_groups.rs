//! A `GROUP BY` whose keys include the table's partition key, with only sums of integer
//! columns besides the keys (`SELECT ean, date, sum(l_wh) … FROM intervals GROUP BY ean, date`,
//! an analyst's daily sums), answered file by file in plain Rust instead of through Polars'
//! group-by: on two cores a year's daily sums took 1.4–1.7× DuckDB's time, most of it in the
//! group-by and in Polars' work per file (`docs/benchmarks.md`).
//!
//! Why the answer is the query's: every row of a file has the file's partition value, so no
//! group holds rows of two partitions, and a group's sum is the sum of its sums per file. Each
//! file is read (only the columns the query names) and summed per group on one of two
//! threads; the groups of the files of one partition are then merged. A sum is over the
//! values that are not null, and null where all are (as SQL, Polars' SQL and DuckDB sum).
//! Sums are kept in 128 bits; one beyond 64 bits is an error, where Polars would wrap it round
//! (or panic), a figure no one should read.
//!
//! What it takes, or the query runs as written: the files a scan of the table reads
//! ([`Lake::partition_files`]), kept by a `WHERE` that names only the partition key (as
//! `top_files` keeps them), each partition value reading back as its folder's text once typed
//! (else two folders could be one group), every file with the columns the scan has, group keys
//! read as text and sums as 64-bit integers. Groups come in the order of their files, then of
//! their first row; without an `ORDER BY` SQL promises no order (Polars gives none either).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use polars::prelude::*;
use polars::sql::SQLContext;
use sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, GroupByExpr, SelectItem, TableFactor,
};

use crate::lake::readahead::{beside, Ask};
use crate::lake::{Lake, Partitioning};

/// A hash map with a fast hash: the keys are the lake's own texts, read by this process only.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// One column of the answer, in the `SELECT`'s order.
enum Output {
    /// The partition key, named so.
    Partition(PlSmallStr),
    /// The i-th group key read from the files, named so.
    Key(usize, PlSmallStr),
    /// The sum of the i-th summed column, named so.
    Sum(usize, PlSmallStr),
}

/// A query of this shape, with the files it reads.
pub(super) struct Planned {
    outputs: Vec<Output>,
    /// The group keys read from the files (the partition key aside), in `GROUP BY` order.
    keys: Vec<String>,
    /// The columns summed.
    sums: Vec<String>,
    /// The columns every file must have, in order: those of the table's scan.
    columns: Vec<String>,
    /// The files the `WHERE` keeps, by path (the files of a partition are neighbours).
    files: Vec<PathBuf>,
    /// Each kept file's partition value, typed as the scan types it.
    partitions: Series,
    /// How many files the table has.
    pub all_files: usize,
}

impl Planned {
    /// How many files the query reads.
    pub fn files(&self) -> usize {
        self.files.len()
    }
}

/// `sql` planned file by file, or `None` when it is not of this shape (see above).
pub(super) fn planned(lake: &Lake, ctx: &mut SQLContext, sql: &str) -> Option<Planned> {
    let query = super::top_n::one_query(sql)?;
    let select = super::top_n::plain_select(&query)?;
    let unordered = query.order_by.is_none() && query.limit_clause.is_none();
    let unaliased = matches!(
        &select.from.first()?.relation,
        TableFactor::Table { alias: None, .. }
    );
    if !unordered || !unaliased || select.having.is_some() {
        return None;
    }
    let grouped = group_keys(&select.group_by)?;
    let (spec, schema) = super::top_files::lake_table(select, ctx)?;
    if spec.partitioning == Partitioning::None {
        return None;
    }
    let partition_key = spec.partitioning.key();
    if let Some(filter) = &select.selection {
        if !super::top_files::on_partition_only(filter, partition_key) {
            return None;
        }
    }
    if !grouped.contains(&partition_key) {
        return None;
    }
    let keys: Vec<String> = grouped
        .iter()
        .filter(|k| **k != partition_key)
        .map(|k| k.to_string())
        .collect();
    if !keys
        .iter()
        .all(|k| schema.get(k) == Some(&DataType::String))
    {
        return None;
    }
    let mut sums: Vec<String> = Vec::new();
    let mut outputs = Vec::new();
    for item in &select.projection {
        let (expr, alias) = match item {
            SelectItem::UnnamedExpr(e) => (e, None),
            SelectItem::ExprWithAlias { expr, alias } => (expr, Some(alias.value.as_str())),
            _ => return None,
        };
        let output = match expr {
            Expr::Identifier(id) if id.value == partition_key => {
                Output::Partition(alias.unwrap_or(partition_key).into())
            }
            Expr::Identifier(id) => {
                let i = keys.iter().position(|k| *k == id.value)?;
                Output::Key(i, alias.unwrap_or(&id.value).into())
            }
            Expr::Function(f) => {
                let column = summed_column(f)?;
                if column == partition_key || schema.get(column) != Some(&DataType::Int64) {
                    return None;
                }
                // Polars names an aggregate after its column.
                let name = alias.unwrap_or(column).into();
                let i = match sums.iter().position(|s| s == column) {
                    Some(i) => i,
                    None => {
                        sums.push(column.to_string());
                        sums.len() - 1
                    }
                };
                Output::Sum(i, name)
            }
            _ => return None,
        };
        outputs.push(output);
    }
    // Something read from every file: a file read for no column may count no rows.
    if keys.is_empty() && sums.is_empty() {
        return None;
    }
    // Every name once: Polars refuses a duplicate, and the query as written says so.
    let names: Vec<&PlSmallStr> = outputs
        .iter()
        .map(|o| match o {
            Output::Partition(n) | Output::Key(_, n) | Output::Sum(_, n) => n,
        })
        .collect();
    if (1..names.len()).any(|i| names[..i].contains(&names[i])) {
        return None;
    }
    let listed = lake.partition_files(spec)?;
    let all_files = listed.len();
    let partitions: Vec<Option<&str>> = listed.iter().map(|(_, p)| p.as_deref()).collect();
    let kept = super::top_files::files_kept(&partitions, select.selection.as_ref(), spec, &schema)?;
    let kept_values: Vec<&str> = kept.iter().map(|&i| partitions[i]).collect::<Option<_>>()?;
    let partitions = super::top_files::partition_series(
        partition_key.into(),
        &kept_values,
        schema.get(partition_key)?,
    )?;
    let columns = schema
        .iter_names()
        .filter(|n| n.as_str() != partition_key)
        .map(|n| n.to_string())
        .collect();
    Some(Planned {
        outputs,
        keys,
        sums,
        columns,
        files: kept.iter().map(|&i| listed[i].0.clone()).collect(),
        partitions,
        all_files,
    })
}

/// The `GROUP BY` keys, each a column named once, or `None`.
fn group_keys(group_by: &GroupByExpr) -> Option<Vec<&str>> {
    let GroupByExpr::Expressions(keys, modifiers) = group_by else {
        return None;
    };
    if !modifiers.is_empty() {
        return None;
    }
    let mut grouped: Vec<&str> = Vec::new();
    for key in keys {
        let Expr::Identifier(id) = key else {
            return None;
        };
        if grouped.contains(&id.value.as_str()) {
            return None;
        }
        grouped.push(&id.value);
    }
    Some(grouped)
}

/// The column of `sum(column)`: no `DISTINCT`, filter, window or other clause.
fn summed_column(f: &sqlparser::ast::Function) -> Option<&str> {
    let [name] = f.name.0.as_slice() else {
        return None;
    };
    let plain = name.as_ident()?.value.eq_ignore_ascii_case("sum")
        && !f.uses_odbc_syntax
        && matches!(f.parameters, FunctionArguments::None)
        && f.filter.is_none()
        && f.null_treatment.is_none()
        && f.over.is_none()
        && f.within_group.is_empty();
    let FunctionArguments::List(list) = &f.args else {
        return None;
    };
    let [FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Identifier(column)))] =
        list.args.as_slice()
    else {
        return None;
    };
    (plain && list.duplicate_treatment.is_none() && list.clauses.is_empty())
        .then_some(column.value.as_str())
}

/// One group of one file (or, merged, of one partition): its keys and its sums, `None` while
/// no value summed was other than null.
struct Group {
    keys: Vec<Option<Box<str>>>,
    sums: Vec<Option<i128>>,
}

/// The groups of the files, each with its index among the plan's files.
type FilesGroups = Vec<(usize, Vec<Group>)>;

/// Why a planned query got no answer this way.
#[derive(Debug)]
pub(super) enum Failed {
    /// A sum beyond 64 bits: the query's answer is this error.
    Overflow(String),
    /// Something this way cannot read (a file that changed, of other columns or types): the
    /// query should run as written.
    Other(PolarsError),
}

impl From<PolarsError> for Failed {
    fn from(e: PolarsError) -> Self {
        Failed::Other(e)
    }
}

/// Runs a planned query: the files summed per group on two threads, then merged per partition.
pub(super) fn run(plan: Planned) -> Result<DataFrame, Failed> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get().min(2))
        .min(plan.files.len().max(1));
    let next = AtomicUsize::new(0);
    // Set by a thread whose file failed: the query will run as written, so the other stops.
    let failed = AtomicBool::new(false);
    let work = || {
        let mut done = Vec::new();
        while !failed.load(Ordering::Relaxed) {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(path) = plan.files.get(i) else {
                break;
            };
            // A panic in the Parquet reader (a hostile file) is an answer here, not a
            // defect: nothing of it is printed, and the query runs as written.
            let read = super::unprinted(|| file_groups(path, &plan)).unwrap_or_else(|_| {
                Err(polars_err!(ComputeError: "{}: unreadable", path.display()).into())
            });
            match read {
                Ok(groups) => done.push((i, groups)),
                Err(e) => {
                    failed.store(true, Ordering::Relaxed);
                    return Err(e);
                }
            }
        }
        Ok(done)
    };
    // The files, asked for ahead of the readers (a hint only, on a thread mostly asleep; see
    // `lake::readahead`) until the readers are done.
    let per_file: Vec<Result<FilesGroups, Failed>> = beside(&plan.files, &next, Ask::Files, || {
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|_| std::thread::Builder::new().spawn_scoped(scope, work))
                .collect();
            handles
                .into_iter()
                .map(|h| match h.map(|h| h.join()) {
                    Ok(Ok(done)) => done,
                    _ => Err(polars_err!(ComputeError: "a thread could not sum its files").into()),
                })
                .collect()
        })
    });
    let mut by_file: Vec<Option<Vec<Group>>> = (0..plan.files.len()).map(|_| None).collect();
    for part in per_file {
        for (i, groups) in part? {
            by_file[i] = Some(groups);
        }
    }
    // Merged per partition: the files of one partition are neighbours (sorted by path); a
    // partition met again after another would be answered twice, so it ends this way.
    let mut file_of_group: Vec<IdxSize> = Vec::new();
    let mut groups: Vec<Group> = Vec::new();
    let mut index: HashMap<Vec<Option<Box<str>>>, usize> = HashMap::default();
    let mut previous: Option<&std::path::Path> = None;
    let mut finished: std::collections::HashSet<&std::path::Path> = Default::default();
    for (f, (path, file)) in plan.files.iter().zip(by_file).enumerate() {
        let file = file.ok_or_else(|| polars_err!(ComputeError: "a file was not read"))?;
        let folder = path.parent();
        if previous != folder {
            index.clear();
            if let Some(done) = previous {
                finished.insert(done);
            }
            if folder.is_some_and(|f| finished.contains(f)) {
                return Err(polars_err!(ComputeError: "a partition's files apart").into());
            }
            previous = folder;
        }
        for group in file {
            match index.get(&group.keys) {
                Some(&g) => add_sums(&mut groups[g].sums, &group.sums),
                None => {
                    index.insert(group.keys.clone(), groups.len());
                    // A file of the group's partition, whose value the answer takes.
                    file_of_group.push(IdxSize::try_from(f).map_err(
                        |_| polars_err!(ComputeError: "more files than an index can count"),
                    )?);
                    groups.push(group);
                }
            }
        }
    }
    answer_frame(&plan, &groups, &file_of_group)
}

/// Adds `more` to `sums`, column by column: a null adds nothing. (128 bits hold the sum of
/// 2^64 values of 64 bits: no file or lake has that many rows.)
fn add_sums(sums: &mut [Option<i128>], more: &[Option<i128>]) {
    for (sum, add) in sums.iter_mut().zip(more) {
        *sum = match (*sum, *add) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
    }
}

/// The texts of one key column of a file, each given a number once (0 for null): a row's
/// group is then found by its numbers, without a string made per row.
struct Interned {
    numbers: HashMap<Box<str>, u32>,
    /// The text of each number; number 0 is null.
    texts: Vec<Option<Box<str>>>,
}

impl Interned {
    fn new() -> Self {
        Interned {
            numbers: HashMap::default(),
            texts: vec![None],
        }
    }

    /// The number of `text`; `None` past 2^32 distinct texts (no file of the lake has that
    /// many, and two texts must never share a number).
    fn number(&mut self, text: Option<&str>) -> Option<u32> {
        let Some(text) = text else {
            return Some(0);
        };
        if let Some(&n) = self.numbers.get(text) {
            return Some(n);
        }
        let n = u32::try_from(self.texts.len()).ok()?;
        self.numbers.insert(text.into(), n);
        self.texts.push(Some(text.into()));
        Some(n)
    }

    fn text(&self, n: u32) -> Option<Box<str>> {
        self.texts.get(n as usize).cloned().flatten()
    }
}

/// The groups of one file: its rows summed per value of the plan's keys, in the order of each
/// group's first row. The file must have the scan's columns, keys as text and sums as 64-bit
/// integers. Read by Polars' Parquet reader without its own threads (each of the two threads
/// here reads files of its own); the Arrow crate's reader, tried first, took 25 % longer on a
/// year's files, most of it making a zstd compression context per column chunk it reads.
fn file_groups(path: &std::path::Path, plan: &Planned) -> Result<Vec<Group>, Failed> {
    let failed = |e: &dyn std::fmt::Display| polars_err!(ComputeError: "{}: {e}", path.display());
    let file = std::fs::File::open(path).map_err(|e| failed(&e))?;
    let mut reader = ParquetReader::new(file).read_parallel(ParallelStrategy::None);
    let schema = reader.schema()?;
    // The scan's columns exactly: Polars refuses a file with another column, and so must this.
    let same_columns = schema.len() == plan.columns.len()
        && schema
            .iter_names()
            .zip(&plan.columns)
            .all(|(field, name)| field.as_str() == name);
    if !same_columns {
        return Err(failed(&"columns other than the table's").into());
    }
    let wanted: Vec<String> = plan.keys.iter().chain(&plan.sums).cloned().collect();
    let df = reader.with_columns(Some(wanted)).finish()?;
    let texts: Vec<&StringChunked> = plan
        .keys
        .iter()
        .map(|k| df.column(k)?.str())
        .collect::<PolarsResult<_>>()?;
    let ints: Vec<&Int64Chunked> = plan
        .sums
        .iter()
        .map(|k| df.column(k)?.i64())
        .collect::<PolarsResult<_>>()?;
    // Every column as long as the frame, else a row's key and sums would come apart.
    let height = df.height();
    if texts.iter().any(|c| c.len() != height) || ints.iter().any(|c| c.len() != height) {
        return Err(failed(&"columns of unequal length").into());
    }
    let mut key_iters: Vec<_> = texts.iter().map(|c| c.iter()).collect();
    let mut sum_iters: Vec<_> = ints.iter().map(|c| c.iter()).collect();
    let mut interned: Vec<Interned> = plan.keys.iter().map(|_| Interned::new()).collect();
    let mut sums_of: Vec<Vec<Option<i128>>> = Vec::new();
    let mut index: HashMap<Vec<u32>, usize> = HashMap::default();
    let mut numbers_of: Vec<Vec<u32>> = Vec::new();
    let mut row_numbers: Vec<u32> = vec![0; plan.keys.len()];
    // The row before's texts and group: the files are sorted by their keys, so a row mostly
    // continues the last group, known by comparing its texts (first by address: a decoded
    // dictionary hands out the same text again) without numbering or hashing them.
    let mut previous: Vec<Option<&str>> = vec![None; plan.keys.len()];
    let mut last: Option<usize> = None;
    for _ in 0..height {
        let mut changed = last.is_none();
        for (((slot, it), names), before) in row_numbers
            .iter_mut()
            .zip(&mut key_iters)
            .zip(&mut interned)
            .zip(&mut previous)
        {
            let text = it.next().flatten();
            let same = match (text, *before) {
                (None, None) => true,
                (Some(a), Some(b)) => (a.as_ptr() == b.as_ptr() && a.len() == b.len()) || a == b,
                _ => false,
            };
            if !same || last.is_none() {
                *slot = names
                    .number(text)
                    .ok_or_else(|| failed(&"too many distinct keys"))?;
                *before = text;
                changed = true;
            }
        }
        let g = match last {
            Some(g) if !changed => g,
            _ => match index.get(row_numbers.as_slice()) {
                Some(&g) => g,
                None => {
                    index.insert(row_numbers.clone(), sums_of.len());
                    numbers_of.push(row_numbers.clone());
                    sums_of.push(vec![None; plan.sums.len()]);
                    sums_of.len() - 1
                }
            },
        };
        last = Some(g);
        for (sum, it) in sums_of[g].iter_mut().zip(&mut sum_iters) {
            if let Some(v) = it.next().flatten() {
                *sum = Some(sum.unwrap_or(0) + i128::from(v));
            }
        }
    }
    Ok(numbers_of
        .into_iter()
        .zip(sums_of)
        .map(|(numbers, sums)| Group {
            keys: numbers
                .iter()
                .zip(&interned)
                .map(|(&n, names)| names.text(n))
                .collect(),
            sums,
        })
        .collect())
}

/// The answer: one row per group, the columns in the `SELECT`'s order. A sum beyond 64 bits
/// is an error.
fn answer_frame(
    plan: &Planned,
    groups: &[Group],
    file_of: &[IdxSize],
) -> Result<DataFrame, Failed> {
    let mut columns = Vec::with_capacity(plan.outputs.len());
    for output in &plan.outputs {
        let series = match output {
            Output::Partition(name) => {
                let mut values = plan.partitions.take_slice(file_of)?;
                values.rename(name.clone());
                values
            }
            Output::Key(i, name) => {
                let values: Vec<Option<&str>> =
                    groups.iter().map(|g| g.keys[*i].as_deref()).collect();
                Series::new(name.clone(), values)
            }
            Output::Sum(i, name) => {
                let values: Vec<Option<i64>> = groups
                    .iter()
                    .map(|g| g.sums[*i].map(i64::try_from).transpose())
                    .collect::<Result<_, _>>()
                    .map_err(|_| {
                        Failed::Overflow(format!(
                            "the sum of {} is beyond a 64-bit integer",
                            plan.sums[*i]
                        ))
                    })?;
                Series::new(name.clone(), values)
            }
        };
        columns.push(series.into_column());
    }
    Ok(DataFrame::new(groups.len(), columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lake::readahead::LEAD;
    use crate::lake::schema::INTERVALS;
    use crate::query::test_rows::{batch, Row};
    use arrow::array::Int64Array;
    use arrow::datatypes::DataType as ArrowType;
    use arrow::record_batch::RecordBatch;

    /// A lake with one `intervals` file per `(day of October 2025, rows)`.
    fn lake(root: &std::path::Path, files: &[(u32, Vec<Row>)]) -> Lake {
        let lake = Lake::open_for_write(root, "test", std::time::Duration::ZERO).unwrap();
        let mut txn = lake.begin().unwrap();
        for (day, rows) in files {
            let date = format!("2025-10-{day:02}");
            lake.stage_batch(&mut txn, &INTERVALS, Some(&date), &batch(*day, rows))
                .unwrap();
        }
        txn.commit().unwrap();
        lake
    }

    fn context(lake: &Lake) -> SQLContext {
        let ctx = SQLContext::new();
        ctx.register("intervals", lake.scan(&INTERVALS).unwrap().unwrap());
        ctx
    }

    /// `df` sorted by every column, to compare answers that SQL gives in no order.
    fn sorted(df: &DataFrame) -> DataFrame {
        let names: Vec<PlSmallStr> = df.get_column_names_owned();
        df.sort(names, SortMultipleOptions::default()).unwrap()
    }

    fn same(ours: &DataFrame, written: &DataFrame, sql: &str) {
        assert_eq!(ours.schema(), written.schema(), "{sql}");
        assert!(
            sorted(ours).equals_missing(&sorted(written)),
            "{sql}\n{ours}\n{written}"
        );
    }

    /// Two cables over three days; on 1 October "a" is in both cables' files (moved between
    /// cables that day), one file's rows are out of order, and "c" has no P at all.
    fn three_days(root: &std::path::Path) -> Lake {
        lake(
            root,
            &[
                (
                    1,
                    vec![
                        ("a", "k1", 0, 1, 0, Some(2), 3),
                        ("a", "k1", 1, 4, 1, Some(0), 3),
                        ("b", "k1", 0, 5, 0, None, 5),
                    ],
                ),
                (
                    1,
                    vec![
                        ("c", "k2", 1, 7, 2, None, 5),
                        ("a", "k2", 2, 10, 0, Some(1), 11),
                        ("c", "k2", 0, 8, 0, None, 8),
                        ("a", "k2", 3, 20, 5, None, 15),
                    ],
                ),
                (2, vec![("a", "k1", 0, 100, 0, Some(9), 109)]),
                (
                    3,
                    vec![
                        ("b", "k1", 0, 6, 1, Some(1), 6),
                        ("c", "k2", 5, -3, 0, None, -3),
                    ],
                ),
            ],
        )
    }

    #[test]
    fn an_unreadable_first_file_among_many_ends_the_run_and_its_hints() {
        // More files than the hints run ahead (`readahead::LEAD`), the first unreadable: an
        // error, and the run ends (the hints' own stop is tested in `readahead`, with files
        // that are never found cached, as these just written are).
        let files: Vec<(u32, Vec<Row>)> = (0..LEAD as u32 + 6)
            .map(|i| (1 + i % 31, vec![("a", "k1", 0, 1, 0, None, 1)]))
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let lake = lake(dir.path(), &files);
        let mut ctx = context(&lake);
        let daily = "SELECT ean, date, sum(l_wh) AS l_wh FROM intervals GROUP BY ean, date";
        let plan = planned(&lake, &mut ctx, daily).unwrap();
        assert_eq!(plan.files(), LEAD + 6);
        std::fs::write(&plan.files[0], b"PAR1 not a Parquet file PAR1").unwrap();
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || done.send(run(plan).is_err()).unwrap());
        let failed = finished
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("the run did not end");
        assert!(failed, "an unreadable file gave an answer");
    }

    #[test]
    fn sums_per_partition_equal_polars_group_by_and_a_hand_count() {
        let dir = tempfile::tempdir().unwrap();
        let lake = three_days(dir.path());
        let mut ctx = context(&lake);
        let daily = "SELECT ean, date, sum(l_wh) AS l_wh, sum(t_wh) AS t_wh, sum(p_wh) AS p_wh, \
                     sum(v_wh) AS v_wh FROM intervals WHERE date >= '2025-10-01' GROUP BY ean, date";
        let plan = planned(&lake, &mut ctx, daily).unwrap();
        assert_eq!((plan.files(), plan.all_files), (4, 4));
        let ours = run(plan).unwrap();
        // By hand: "a" on 1 October, across both files: L 1 + 4 + 10 + 20, T 0 + 1 + 0 + 5,
        // P 2 + 0 + 1 (one null), V 3 + 3 + 11 + 15; "c" has no P at all: null, as SQL sums.
        let a = ours
            .clone()
            .lazy()
            .filter(col("ean").eq(lit("a")))
            .sort(["date"], Default::default())
            .collect()
            .unwrap();
        let first = |name: &str| a.column(name).unwrap().i64().unwrap().get(0);
        assert_eq!(
            [first("l_wh"), first("t_wh"), first("p_wh"), first("v_wh")],
            [Some(35), Some(6), Some(3), Some(32)]
        );
        assert_eq!(ours.height(), 3 + 1 + 2);
        let c = ours
            .clone()
            .lazy()
            .filter(col("ean").eq(lit("c")))
            .collect()
            .unwrap();
        let c_p: Vec<Option<i64>> = c.column("p_wh").unwrap().i64().unwrap().iter().collect();
        assert_eq!(c_p, [None, None]);
        for sql in [
            daily,
            "SELECT date, sum(v_wh) FROM intervals GROUP BY date",
            "SELECT cable_id, sum(l_wh) AS l, date AS day FROM intervals \
             WHERE date BETWEEN '2025-10-01' AND '2025-10-02' GROUP BY date, cable_id",
            // A key grouped by but not shown: one row per EAN and day all the same.
            "SELECT date, sum(p_wh) AS p, sum(p_wh) AS p_again FROM intervals GROUP BY ean, date",
            "SELECT ean, sum(l_wh) AS l FROM intervals WHERE NOT date = '2025-10-02' \
             GROUP BY date, ean, cable_id",
            // A key null on some rows, text on others, and back.
            "SELECT p_quality, date, sum(l_wh) AS l FROM intervals GROUP BY p_quality, date",
            // No sums: the groups alone.
            "SELECT ean, date FROM intervals GROUP BY ean, date",
            // No day kept: no rows, the same columns.
            "SELECT ean, date, sum(l_wh) AS l FROM intervals WHERE date > '2030-01-01' \
             GROUP BY ean, date",
        ] {
            let plan = planned(&lake, &mut ctx, sql).unwrap_or_else(|| panic!("{sql}"));
            let ours = run(plan).unwrap();
            let written = super::super::collect(ctx.execute(sql).unwrap()).unwrap();
            same(&ours, &written, sql);
        }
        // And through `answer`, the way `vaten query` runs it.
        let answered = super::super::answer(Some(&lake), &mut ctx, daily).unwrap();
        let written = super::super::collect(ctx.execute(daily).unwrap()).unwrap();
        same(&answered, &written, daily);
    }

    #[test]
    fn other_shapes_are_left_to_polars() {
        let dir = tempfile::tempdir().unwrap();
        let lake = three_days(dir.path());
        let mut ctx = context(&lake);
        for sql in [
            // Not grouped by the partition key: groups span files of several days.
            "SELECT ean, sum(l_wh) AS l FROM intervals GROUP BY ean",
            // A filter on rows, not whole files.
            "SELECT ean, date, sum(l_wh) AS l FROM intervals WHERE l_wh > 3 GROUP BY ean, date",
            "SELECT ean, date, sum(l_wh) AS l FROM intervals GROUP BY ean, date HAVING sum(l_wh) > 3",
            "SELECT ean, date, sum(l_wh) AS l FROM intervals GROUP BY ean, date ORDER BY l",
            "SELECT ean, date, sum(l_wh) AS l FROM intervals GROUP BY ean, date LIMIT 2",
            "SELECT ean, date, count(*) AS n FROM intervals GROUP BY ean, date",
            "SELECT ean, date, avg(l_wh) AS l FROM intervals GROUP BY ean, date",
            "SELECT ean, date, sum(DISTINCT l_wh) AS l FROM intervals GROUP BY ean, date",
            "SELECT ean, date, sum(l_wh + t_wh) AS l FROM intervals GROUP BY ean, date",
            "SELECT ean, date, sum(l_quality) AS q FROM intervals GROUP BY ean, date",
            // A key that is no text, a key not grouped by, a name twice.
            "SELECT interval_start, date, sum(l_wh) AS l FROM intervals \
             GROUP BY interval_start, date",
            "SELECT ean, cable_id, date, sum(l_wh) AS l FROM intervals GROUP BY ean, date",
            "SELECT ean, date, sum(l_wh) AS ean FROM intervals GROUP BY ean, date",
            "SELECT DISTINCT ean, date, sum(l_wh) AS l FROM intervals GROUP BY ean, date",
            "SELECT i.ean, date, sum(l_wh) AS l FROM intervals i GROUP BY i.ean, date",
            "SELECT ean, date, sum(l_wh) AS l FROM intervals GROUP BY 1, 2",
            // The partition key summed; rows sampled or picked by a clause Polars refuses.
            "SELECT ean, date, sum(date) AS d FROM intervals GROUP BY ean, date",
            "SELECT ean, date, sum(l_wh) AS l FROM intervals TABLESAMPLE BERNOULLI (10) \
             GROUP BY ean, date",
            "SELECT ean, date, sum(l_wh) AS l FROM intervals PARTITION (p) GROUP BY ean, date",
            // Nothing read from the files but the row count.
            "SELECT date FROM intervals GROUP BY date",
        ] {
            assert!(planned(&lake, &mut ctx, sql).is_none(), "{sql}");
        }
        // A table without partitions (registered here from memory).
        let rows = df!("participant_id" => ["p"], "year" => [2025i64], "l_wh" => [1i64]).unwrap();
        ctx.register("tax_base_yearly", rows.lazy());
        let sql = "SELECT participant_id, year, sum(l_wh) FROM tax_base_yearly \
                   GROUP BY participant_id, year";
        assert!(super::super::top_files::lake_table(&select_of(sql), &mut ctx).is_some());
        assert!(planned(&lake, &mut ctx, sql).is_none());
    }

    fn select_of(sql: &str) -> sqlparser::ast::Select {
        let query = super::super::top_n::one_query(sql).unwrap();
        match *query.body {
            sqlparser::ast::SetExpr::Select(select) => *select,
            _ => panic!("{sql}"),
        }
    }

    #[test]
    fn sums_pass_64_bits_on_the_way_and_beyond_64_bits_are_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let big = i64::MAX - 1;
        // By hand: (2^63 - 2) + 2 - 5 = 2^63 - 5 fits, though the first two alone do not: in
        // one file, summed in its order ("a"), and across files ("b").
        let lake = lake(
            dir.path(),
            &[
                (
                    1,
                    vec![
                        ("a", "k1", 0, big, 0, None, 0),
                        ("a", "k1", 1, 2, 0, None, 0),
                        ("a", "k1", 2, -5, 0, None, 0),
                        ("b", "k1", 0, big, 0, None, 0),
                    ],
                ),
                (1, vec![("b", "k2", 1, 2, 0, None, 0)]),
                (1, vec![("b", "k3", 2, -5, 0, None, 0)]),
                (2, vec![("a", "k1", 0, big, 0, None, 0)]),
                (2, vec![("a", "k2", 1, 2, 0, None, 0)]),
            ],
        );
        let mut ctx = context(&lake);
        let sql = "SELECT ean, date, sum(l_wh) AS l FROM intervals \
                   WHERE date = '2025-10-01' GROUP BY ean, date";
        let answer = run(planned(&lake, &mut ctx, sql).unwrap()).unwrap();
        let l: Vec<Option<i64>> = answer.column("l").unwrap().i64().unwrap().iter().collect();
        assert_eq!(l, [Some(i64::MAX - 4), Some(i64::MAX - 4)]);
        // On the 2nd, 2^63 - 2 + 2 is beyond: an error, not a figure wrapped round.
        let sql = "SELECT ean, date, sum(l_wh) AS l FROM intervals GROUP BY ean, date";
        let plan = planned(&lake, &mut ctx, sql).unwrap();
        assert!(matches!(run(plan), Err(Failed::Overflow(_))));
        // `vaten query` answers with the error (Polars, as written, wraps or panics).
        let e = super::super::answer(Some(&lake), &mut ctx, sql).unwrap_err();
        assert!(
            e.to_string().contains("l_wh is beyond a 64-bit integer"),
            "{e}"
        );
    }

    /// A file with one more column than the others (Polars' scan refuses the table), or with L
    /// as a 32-bit integer: this way must not answer, and the query runs as written.
    #[test]
    fn a_file_with_other_columns_or_types_is_left_to_polars() {
        let rows = batch(4, &[("a", "k1", 0, 1, 0, None, 1)]);
        let fields: Vec<arrow::datatypes::FieldRef> =
            INTERVALS.arrow_schema().fields().iter().cloned().collect();
        let mut more_fields = fields.clone();
        more_fields.push(Arc::new(arrow::datatypes::Field::new(
            "extra",
            ArrowType::Int64,
            false,
        )));
        let mut more_columns = rows.columns().to_vec();
        more_columns.push(Arc::new(Int64Array::from(vec![7])));
        let l = INTERVALS.arrow_schema().index_of("l_wh").unwrap();
        let mut narrow_fields = fields.clone();
        narrow_fields[l] = Arc::new(arrow::datatypes::Field::new("l_wh", ArrowType::Int32, true));
        let mut narrow_columns = rows.columns().to_vec();
        narrow_columns[l] = Arc::new(arrow::array::Int32Array::from(vec![1]));
        for (fields, columns) in [(more_fields, more_columns), (narrow_fields, narrow_columns)] {
            let dir = tempfile::tempdir().unwrap();
            let lake = three_days(dir.path());
            let schema = Arc::new(arrow::datatypes::Schema::new(fields));
            let odd = RecordBatch::try_new(schema.clone(), columns).unwrap();
            let folder = dir.path().join("intervals/date=2025-10-04");
            std::fs::create_dir_all(&folder).unwrap();
            let file = std::fs::File::create(folder.join("odd.parquet")).unwrap();
            let mut writer = parquet::arrow::ArrowWriter::try_new(file, schema, None).unwrap();
            writer.write(&odd).unwrap();
            writer.close().unwrap();
            let mut ctx = context(&lake);
            let sql = "SELECT ean, date, sum(l_wh) AS l FROM intervals GROUP BY ean, date";
            let plan = planned(&lake, &mut ctx, sql).unwrap();
            assert!(matches!(run(plan), Err(Failed::Other(_))));
            let answered = super::super::answer(Some(&lake), &mut ctx, sql);
            let written = super::super::collect(ctx.execute(sql).unwrap());
            match (answered, written) {
                (Ok(a), Ok(w)) => same(&a, &w, sql),
                (Err(a), Err(w)) => assert_eq!(a.to_string(), w.to_string()),
                (a, w) => panic!("answered {a:?}, as written {w:?}"),
            }
        }
    }
}
