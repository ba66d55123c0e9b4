//! Restated figures: late data can change a year after its statements and report were
//! written. A report written again over an earlier version with different figures says so: the
//! date it is as of, and per changed figure the previous and the new amount.
//!
//! The earlier version is read back from the file itself: every figure is carried raw in its
//! `data-figure`/`data-value` attributes and the date in `<meta name="vaten-as-of">`.

use std::collections::BTreeMap;
use std::path::Path;

use super::doc::{unescape, Block, Cell, Doc, Value};

/// At most this many changed figures are listed one by one; the rest are counted.
const LISTED: usize = 12;

/// The figures of a report file written earlier, the date it was as of, whom it was about, and
/// the restatement note it carried.
pub struct Previous {
    pub as_of: Option<String>,
    pub subject: Option<String>,
    pub figures: BTreeMap<String, String>,
    pub note: Option<String>,
}

/// Reads an earlier version of a report, if there is one. A file that exists but cannot be
/// read is said in the log (its figures cannot be compared; the new version is written anyway).
pub fn previous(path: &Path) -> Option<Previous> {
    let html = match std::fs::read_to_string(path) {
        Ok(html) => html,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(
                "{}: cannot read the earlier version ({e}); not compared",
                path.display()
            );
            return None;
        }
    };
    let attribute = |tag: &str, name: &str| -> Option<String> {
        let at = tag.find(&format!("{name}=\""))? + name.len() + 2;
        Some(unescape(tag[at..].split('"').next()?))
    };
    let meta = |name: &str| {
        html.split("<meta ")
            .skip(1)
            .map(|m| m.split('>').next().unwrap_or(""))
            .find(|m| m.contains(&format!("name=\"{name}\"")))
            .and_then(|m| attribute(m, "content"))
    };
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
    let note = html
        .split("role=\"alert\">")
        .skip(1)
        .map(|p| unescape(p.split("</p>").next().unwrap_or("")))
        .find(|p| p.starts_with(NOTE));
    Some(Previous {
        as_of: meta("vaten-as-of"),
        subject: meta("vaten-subject"),
        figures,
        note,
    })
}

const NOTE: &str = "Restated:";

/// Energy and money figures of `doc` and their raw values.
fn figures(doc: &Doc) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for block in &doc.blocks {
        let Block::Table { rows, .. } = block else {
            continue;
        };
        for cell in rows.iter().flatten() {
            if let Cell::Figure { key, value } = cell {
                if matches!(value, Value::Wh(_) | Value::Cents(_)) {
                    out.insert(key.clone(), value.clone());
                }
            }
        }
    }
    out
}

/// `raw` as the reader saw it, in the unit of `like`; euros say whether VAT is in them.
fn shown_as(key: &str, raw: &str, like: &Value) -> String {
    let vat = if key.contains("incl_vat") {
        " including VAT"
    } else {
        " excluding VAT"
    };
    match (like, raw.parse::<i64>().ok()) {
        (Value::Wh(_), Some(v)) => Value::Wh(v).shown(),
        (Value::Cents(_), Some(v)) => format!("{}{vat}", Value::Cents(Some(v)).shown()),
        (Value::Cents(_), None) => Value::Cents(None).shown(),
        _ => raw.to_string(),
    }
}

/// Marks `doc` as of `as_of` and about `subject`. When `previous` (the file it replaces, about
/// the same subject) had other energy or money figures, a "restated" note goes first with the
/// previous and the new amounts; an earlier note is kept while nothing changed again. With
/// `amounts` false (a public report) the note names the changed figures only: the difference
/// of two versions could be one late household's data.
pub fn mark(doc: &mut Doc, as_of: &str, subject: &str, previous: Option<&Previous>, amounts: bool) {
    doc.as_of = Some(as_of.to_string());
    doc.subject = Some(subject.to_string());
    let Some(previous) = previous.filter(|p| p.subject.as_deref() == Some(subject)) else {
        return;
    };
    let now = figures(doc);
    let mut lines = Vec::new();
    for (key, new) in &now {
        match previous.figures.get(key) {
            Some(old) if *old != new.raw() && amounts => lines.push(format!(
                "{key}: {} before, {} now.",
                shown_as(key, old, new),
                shown_as(key, &new.raw(), new)
            )),
            Some(old) if *old != new.raw() => lines.push(format!("{key} changed.")),
            None if amounts => {
                lines.push(format!("{key}: new, {}.", shown_as(key, &new.raw(), new)))
            }
            None => lines.push(format!("{key}: new.")),
            _ => {}
        }
    }
    for key in previous.figures.keys() {
        let was_money = now.contains_key(key) || key.ends_with("_wh") || key.ends_with("_ct");
        if !now.contains_key(key) && was_money {
            lines.push(format!("{key}: no longer shown."));
        }
    }
    let note = if lines.is_empty() {
        match &previous.note {
            Some(note) => note.clone(),
            None => return,
        }
    } else {
        let mut note = format!(
            "{NOTE} this version, as of {as_of}, replaces the one as of {}; late data changed {} figure(s).",
            previous.as_of.as_deref().unwrap_or("an unknown date"),
            lines.len()
        );
        for line in lines.iter().take(LISTED) {
            note += &format!(" {line}");
        }
        if lines.len() > LISTED {
            note += &format!(" And {} more.", lines.len() - LISTED);
        }
        note
    };
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
        mark(&mut first, "2027-01-03", "P1", None, true);
        std::fs::write(&path, first.html()).unwrap();

        // The same figures again: no note.
        let mut same = first.clone();
        mark(
            &mut same,
            "2027-02-01",
            "P1",
            previous(&path).as_ref(),
            true,
        );
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
        mark(
            &mut second,
            "2027-03-01",
            "P1",
            previous(&path).as_ref(),
            true,
        );
        let html = second.html();
        assert!(
            html.contains("name=\"vaten-as-of\" content=\"2027-03-01\""),
            "{html}"
        );
        let note = html.split("role=\"alert\">").nth(1).unwrap();
        assert!(note.starts_with("Restated: this version, as of 2027-03-01, replaces the one as of 2027-01-03; late data changed 1 figure(s). tax.net_energy_tax_ct: € 64.13 excluding VAT before, € 70.00 excluding VAT now."), "{note}");
    }

    #[test]
    fn another_subject_is_not_compared_and_a_note_stays_until_figures_change_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.html");
        let doc = |ct: i64| {
            let mut d = Doc::new("Statement");
            d.table(
                &["figure", "value"],
                vec![vec![
                    Cell::text("tax"),
                    Cell::fig("tax.energy_tax_ct", Value::Cents(Some(ct))),
                ]],
            );
            d
        };
        let mut first = doc(100);
        mark(&mut first, "2027-01-03", "P 1", None, true);
        std::fs::write(&path, first.html()).unwrap();
        // Another participant whose id maps to the same file: nothing of P 1 is shown.
        let mut other = doc(900);
        mark(
            &mut other,
            "2027-01-04",
            "P.1",
            previous(&path).as_ref(),
            true,
        );
        assert!(!other.html().contains("Restated"));
        // P 1 restated, then written again unchanged: the note stays.
        let mut second = doc(200);
        mark(
            &mut second,
            "2027-02-01",
            "P 1",
            previous(&path).as_ref(),
            true,
        );
        std::fs::write(&path, second.html()).unwrap();
        let mut third = doc(200);
        mark(
            &mut third,
            "2027-03-01",
            "P 1",
            previous(&path).as_ref(),
            true,
        );
        let html = third.html();
        assert!(html.contains("replaces the one as of 2027-01-03"), "{html}");
        assert!(
            html.contains("€ 1.00 excluding VAT before, € 2.00 excluding VAT now."),
            "{html}"
        );
    }
}
