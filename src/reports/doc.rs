//! A report as a small document model, rendered as a self-contained HTML page (inline CSS and
//! SVG, no external assets, readable on a phone) and as its Markdown twin.
//!
//! Every number comes as a [`Cell::Figure`]: shown formatted for people and carried raw in
//! `data-figure`/`data-value` attributes, so that tests (and anyone) can check each figure
//! against the lake with another engine.

use std::fmt::Write;

/// A figure's raw value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Energy in Wh, shown in kWh with three decimals (exact).
    Wh(i64),
    /// Money in cents, shown in euros; `None`: not computed (no rates for the year).
    Cents(Option<i64>),
    /// A count.
    Count(i64),
    /// A fraction, shown as a percentage; `None`: not defined (nothing to divide by).
    Share(Option<f64>),
}

impl Value {
    pub fn raw(&self) -> String {
        match self {
            Value::Wh(v) | Value::Count(v) | Value::Cents(Some(v)) => v.to_string(),
            Value::Share(Some(f)) => format!("{f}"),
            Value::Cents(None) | Value::Share(None) => "null".into(),
        }
    }

    pub fn shown(&self) -> String {
        match self {
            Value::Wh(wh) => format!("{} kWh", kwh(*wh)),
            Value::Cents(Some(ct)) => euros(*ct),
            Value::Cents(None) => "not computed".into(),
            Value::Count(n) => group(n.unsigned_abs(), *n < 0),
            Value::Share(Some(f)) => format!("{:.1} %", f * 100.0),
            Value::Share(None) => "–".into(),
        }
    }
}

/// `1234567` Wh → `1,234.567` (exact: integer arithmetic).
pub fn kwh(wh: i64) -> String {
    let neg = wh < 0;
    let a = wh.unsigned_abs();
    format!("{}.{:03}", group(a / 1000, neg), a % 1000)
}

/// `-4556700` ct → `€ -45,567.00`.
pub fn euros(ct: i64) -> String {
    let a = ct.unsigned_abs();
    format!("€ {}.{:02}", group(a / 100, ct < 0), a % 100)
}

fn group(n: u64, neg: bool) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if neg {
        format!("-{out}")
    } else {
        out
    }
}

#[derive(Debug, Clone)]
pub enum Cell {
    Text(String),
    Figure { key: String, value: Value },
}

impl Cell {
    pub fn text(s: impl Into<String>) -> Self {
        Cell::Text(s.into())
    }
    pub fn fig(key: impl Into<String>, value: Value) -> Self {
        Cell::Figure {
            key: key.into(),
            value,
        }
    }
}

#[derive(Debug, Clone)]
pub enum Block {
    Heading(String),
    Para(String),
    /// Shown highlighted: a warning the reader must not miss.
    Warning(String),
    Table {
        head: Vec<String>,
        rows: Vec<Vec<Cell>>,
    },
    /// An SVG chart and a one-line description (the Markdown twin shows the description).
    Chart {
        svg: String,
        alt: String,
    },
}

#[derive(Debug, Clone, Default)]
pub struct Doc {
    pub title: String,
    pub blocks: Vec<Block>,
    /// The date the figures are as of (shown, and kept in a `<meta name="vaten-as-of">` so that
    /// a later version can say what it restates).
    pub as_of: Option<String>,
    /// Whom or what the report is about (a participant id, `yearly 2026`), kept in a `<meta>`:
    /// a later version only compares its figures with a file about the same subject.
    pub subject: Option<String>,
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0 auto;max-width:60rem;padding:0.75rem;color:#1b1b1b;line-height:1.45}\
h1{font-size:1.5rem}h2{font-size:1.2rem;margin-top:1.8rem;border-bottom:1px solid #ccc}\
.scroll{overflow-x:auto}table{border-collapse:collapse;margin:0.5rem 0}\
th,td{padding:0.25rem 0.6rem;border-bottom:1px solid #e2e2e2;text-align:left;white-space:nowrap}\
td[data-figure]{text-align:right;font-variant-numeric:tabular-nums}\
.warning{background:#fff3cd;border-left:4px solid #d39e00;padding:0.5rem 0.75rem}\
figure{margin:0.75rem 0}figure svg{max-width:100%;height:auto}figcaption{font-size:0.85rem;color:#555}";

/// Text as Markdown shows it literally: the characters Markdown and HTML give a meaning are
/// backslash-escaped, line breaks become spaces (a server's error text lands in reports and must
/// not become a link, an image, markup or a table row).
pub fn md_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            // `:` keeps `http://…` from becoming a link; `-`, `+`, `=` a list or heading.
            '\\' | '`' | '*' | '_' | '[' | ']' | '(' | ')' | '<' | '>' | '#' | '|' | '!' | '~'
            | '&' | ':' | '-' | '+' | '=' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// The inverse of [`escape`], for reading a report back.
pub fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

impl Doc {
    pub fn new(title: impl Into<String>) -> Self {
        Doc {
            title: title.into(),
            blocks: Vec::new(),
            as_of: None,
            subject: None,
        }
    }

    pub fn push(&mut self, b: Block) {
        self.blocks.push(b);
    }

    pub fn heading(&mut self, s: impl Into<String>) {
        self.push(Block::Heading(s.into()));
    }

    pub fn para(&mut self, s: impl Into<String>) {
        self.push(Block::Para(s.into()));
    }

    pub fn table(&mut self, head: &[&str], rows: Vec<Vec<Cell>>) {
        self.push(Block::Table {
            head: head.iter().map(|s| s.to_string()).collect(),
            rows,
        });
    }

    pub fn html(&self) -> String {
        let mut o = String::new();
        let _ = write!(
            o,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <title>{}</title>\n<style>{STYLE}</style>\n{}</head>\n<body>\n<h1>{}</h1>\n",
            escape(&self.title),
            [
                ("vaten-as-of", &self.as_of),
                ("vaten-subject", &self.subject)
            ]
            .iter()
            .filter_map(|(name, v)| v
                .as_ref()
                .map(|v| format!("<meta name=\"{name}\" content=\"{}\">\n", escape(v))))
            .collect::<String>(),
            escape(&self.title)
        );
        if let Some(d) = &self.as_of {
            let _ = writeln!(o, "<p>Figures as of {}.</p>", escape(d));
        }
        for b in &self.blocks {
            match b {
                Block::Heading(s) => {
                    let _ = writeln!(o, "<h2>{}</h2>", escape(s));
                }
                Block::Para(s) => {
                    let _ = writeln!(o, "<p>{}</p>", escape(s));
                }
                Block::Warning(s) => {
                    let _ = writeln!(o, "<p class=\"warning\" role=\"alert\">{}</p>", escape(s));
                }
                Block::Table { head, rows } => {
                    o.push_str("<div class=\"scroll\"><table>\n<thead><tr>");
                    for h in head {
                        let _ = write!(o, "<th>{}</th>", escape(h));
                    }
                    o.push_str("</tr></thead>\n<tbody>\n");
                    for r in rows {
                        o.push_str("<tr>");
                        for c in r {
                            match c {
                                Cell::Text(s) => {
                                    let _ = write!(o, "<td>{}</td>", escape(s));
                                }
                                Cell::Figure { key, value } => {
                                    let _ = write!(
                                        o,
                                        "<td data-figure=\"{}\" data-value=\"{}\">{}</td>",
                                        escape(key),
                                        value.raw(),
                                        escape(&value.shown())
                                    );
                                }
                            }
                        }
                        o.push_str("</tr>\n");
                    }
                    o.push_str("</tbody></table></div>\n");
                }
                Block::Chart { svg, alt } => {
                    // The SVG inline (no external asset); its XML prolog, if any, dropped.
                    let svg = svg.find("<svg").map_or(svg.as_str(), |i| &svg[i..]);
                    let _ = writeln!(
                        o,
                        "<figure role=\"img\" aria-label=\"{}\">{svg}<figcaption>{}</figcaption></figure>",
                        escape(alt),
                        escape(alt)
                    );
                }
            }
        }
        o.push_str("</body>\n</html>\n");
        o
    }

    pub fn markdown(&self) -> String {
        let md = md_escape;
        let mut o = format!("# {}\n\n", md(&self.title));
        if let Some(d) = &self.as_of {
            let _ = write!(o, "Figures as of {}.\n\n", md(d));
        }
        for b in &self.blocks {
            match b {
                Block::Heading(s) => {
                    let _ = write!(o, "## {}\n\n", md(s));
                }
                Block::Para(s) => {
                    let _ = write!(o, "{}\n\n", md(s));
                }
                Block::Warning(s) => {
                    let _ = write!(o, "> **Warning:** {}\n\n", md(s));
                }
                Block::Table { head, rows } => {
                    let _ = writeln!(
                        o,
                        "| {} |",
                        head.iter().map(|h| md(h)).collect::<Vec<_>>().join(" | ")
                    );
                    let _ = writeln!(o, "|{}", "---|".repeat(head.len()));
                    for r in rows {
                        let cells: Vec<String> = r
                            .iter()
                            .map(|c| match c {
                                Cell::Text(s) => md(s),
                                Cell::Figure { value, .. } => md(&value.shown()),
                            })
                            .collect();
                        let _ = writeln!(o, "| {} |", cells.join(" | "));
                    }
                    o.push('\n');
                }
                Block::Chart { alt, .. } => {
                    let _ = write!(o, "_Chart: {} (in the HTML report)._\n\n", md(alt));
                }
            }
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_exact_and_grouped() {
        assert_eq!(kwh(9_095_189), "9,095.189");
        assert_eq!(kwh(-61), "-0.061");
        assert_eq!(kwh(0), "0.000");
        assert_eq!(euros(-4_556_700), "€ -45,567.00");
        assert_eq!(euros(115_414), "€ 1,154.14");
        assert_eq!(Value::Count(1_234_567).shown(), "1,234,567");
        assert_eq!(Value::Share(Some(0.25)).shown(), "25.0 %");
    }

    #[test]
    fn html_escapes_text_and_carries_raw_figures() {
        let mut d = Doc::new("A <b> & c");
        d.table(
            &["what", "value"],
            vec![vec![
                Cell::text("x<y"),
                Cell::fig("k.l_wh", Value::Wh(1500)),
            ]],
        );
        let h = d.html();
        assert!(h.contains("<title>A &lt;b&gt; &amp; c</title>"));
        assert!(h.contains("<td>x&lt;y</td>"));
        assert!(h.contains("data-figure=\"k.l_wh\" data-value=\"1500\">1.500 kWh</td>"));
        let m = d.markdown();
        // Markdown shows the text literally (escaped), as it shows HTML's.
        assert!(m.contains("| x\\<y | 1.500 kWh |"), "{m}");
    }

    #[test]
    fn markdown_shows_hostile_text_literally() {
        let mut d = Doc::new("Night");
        d.para(
            "server said: <img src=x onerror=alert(1)> [click](http://evil) | x\n# not a heading",
        );
        let m = d.markdown();
        assert!(m.contains("\\<img src\\=x onerror\\=alert\\(1\\)\\> \\[click\\]\\(http\\://evil\\) \\| x \\# not a heading"), "{m}");
        assert!(!m.contains("\n# not"));
    }
}
