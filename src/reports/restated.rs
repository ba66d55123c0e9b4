//! Restated figures: late data can change a year after its statements and report were
//! written. A report written again over an earlier version with different figures says so: the
//! date it is as of, and per changed figure the previous and the new amount.
//!
//! The earlier version is read back from the file itself: every figure is carried raw in its
//! `data-figure`/`data-value` attributes and the date in `<meta name="vaten-as-of">`.

use std::collections::BTreeMap;
use std::path::Path;

use super::doc::{Block, Cell, Doc, Value};

/// At most this many changed figures are listed one by one; the rest are counted.
const LISTED: usize = 12;

/// The figures of a report file written earlier, and the date it was as of.
pub struct Previous {
    pub as_of: Option<String>,
    pub figures: BTreeMap<String, String>,
}

/// Reads an earlier version of a report, if there is one.
pub fn previous(path: &Path) -> Option<Previous> {
    let html = std::fs::read_to_string(path).ok()?;
    let attribute = |tag: &str, name: &str| -> Option<String> {
        let at = tag.find(&format!("{name}=\""))? + name.len() + 2;
        Some(tag[at..].split('"').next()?.to_string())
    };
    let as_of = html
        .split("<meta ")
        .skip(1)
        .map(|m| m.split('>').next().unwrap_or(""))
        .find(|m| m.contains("name=\"vaten-as-of\""))
        .and_then(|m| attribute(m, "content"));
    let figures = html
        .split("<td ")
        .skip(1)
        .filter_map(|td| {
            let tag = td.split('>').next()?;
            Some((
                attribute(tag, "data-figure")?,
                attribute(tag, "data-value")?,
            ))
        })
        .collect();
    Some(Previous { as_of, figures })
}

/// Energy and money figures of `doc` that differ from `previous`, as (key, previous, new).
fn changes(doc: &Doc, previous: &Previous) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for block in &doc.blocks {
        let Block::Table { rows, .. } = block else {
            continue;
        };
        for cell in rows.iter().flatten() {
            let Cell::Figure { key, value } = cell else {
                continue;
            };
            if !matches!(value, Value::Wh(_) | Value::Cents(_)) {
                continue;
            }
            match previous.figures.get(key) {
                Some(old) if *old != value.raw() => {
                    out.push((key.clone(), old.clone(), value.clone()))
                }
                _ => {}
            }
        }
    }
    out
}

/// `raw` as the reader saw it, in the unit of `like`.
fn shown_as(raw: &str, like: &Value) -> String {
    match (like, raw.parse::<i64>().ok()) {
        (Value::Wh(_), Some(v)) => Value::Wh(v).shown(),
        (Value::Cents(_), Some(v)) => Value::Cents(Some(v)).shown(),
        (Value::Cents(_), None) => Value::Cents(None).shown(),
        _ => raw.to_string(),
    }
}

/// Marks `doc` as of `as_of` and, when `previous` (the file it replaces) had other energy or
/// money figures, puts a "restated" note first with the previous and the new amounts.
pub fn mark(doc: &mut Doc, as_of: &str, previous: Option<&Previous>) {
    doc.as_of = Some(as_of.to_string());
    let Some(previous) = previous else {
        return;
    };
    let changed = changes(doc, previous);
    if changed.is_empty() {
        return;
    }
    let mut note = format!(
        "Restated: this version, as of {as_of}, replaces the one as of {}; late data changed {} figure(s).",
        previous.as_of.as_deref().unwrap_or("an unknown date"),
        changed.len()
    );
    for (key, old, new) in changed.iter().take(LISTED) {
        note += &format!(
            " {key}: {} before, {} now.",
            shown_as(old, new),
            new.shown()
        );
    }
    if changed.len() > LISTED {
        note += &format!(" And {} more.", changed.len() - LISTED);
    }
    doc.blocks.insert(0, Block::Warning(note));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rewritten_report_names_what_changed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.html");
        let mut first = Doc::new("Statement");
        first.table(
            &["figure", "value"],
            vec![
                vec![
                    Cell::text("tax"),
                    Cell::fig("tax.net_energy_tax_ct", Value::Cents(Some(6_413))),
                ],
                vec![Cell::text("L"), Cell::fig("l_wh", Value::Wh(3_500_000))],
            ],
        );
        mark(&mut first, "2027-01-03", None);
        std::fs::write(&path, first.html()).unwrap();

        // The same figures again: no note.
        let mut same = first.clone();
        mark(&mut same, "2027-02-01", previous(&path).as_ref());
        assert!(!same.html().contains("Restated"));

        // The tax changed: the note names the old and new amounts and both dates.
        let mut second = Doc::new("Statement");
        second.table(
            &["figure", "value"],
            vec![
                vec![
                    Cell::text("tax"),
                    Cell::fig("tax.net_energy_tax_ct", Value::Cents(Some(7_000))),
                ],
                vec![Cell::text("L"), Cell::fig("l_wh", Value::Wh(3_500_000))],
            ],
        );
        mark(&mut second, "2027-03-01", previous(&path).as_ref());
        let html = second.html();
        assert!(
            html.contains("name=\"vaten-as-of\" content=\"2027-03-01\""),
            "{html}"
        );
        let note = html.split("role=\"alert\">").nth(1).unwrap();
        assert!(note.starts_with("Restated: this version, as of 2027-03-01, replaces the one as of 2027-01-03; late data changed 1 figure(s). tax.net_energy_tax_ct: € 64.13 before, € 70.00 now."), "{note}");
    }
}
