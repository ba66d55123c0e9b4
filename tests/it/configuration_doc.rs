//! `docs/configuration.md` documents every key the configuration parser accepts, and nothing
//! it refuses. The parser is asked for its own keys: a probe key in each table makes it refuse
//! the file and list the fields it knows.

use std::collections::BTreeSet;
use std::path::Path;

use vaten::config::Config;

const DOC: &str = include_str!("../../docs/configuration.md");

/// A valid minimal configuration with `probe = 1` in `table` ("" for the top level).
fn with_probe(table: &str) -> String {
    let top = if table.is_empty() { "probe = 1\n" } else { "" };
    let mut text =
        format!("{top}lake = \"l\"\nregistry = \"r\"\n[grid]\nbase_url = \"https://x\"\n");
    match table {
        "" => {}
        "grid" => text += "probe = 1\n",
        _ => text += &format!("[{table}]\nprobe = 1\n"),
    }
    text
}

/// The keys the parser knows in `table`, from its refusal of the probe; `None` when `table`
/// is not a table (a probe inside a value is refused without a list of fields).
fn keys_of(table: &str) -> Option<Vec<String>> {
    let err = Config::parse(&with_probe(table), Path::new("vaten.toml"))
        .expect_err("the probe key must be refused")
        .to_string();
    let listed = err.split_once("unknown field `probe`, expected")?.1;
    let keys: Vec<String> = listed
        .split('`')
        .skip(1)
        .step_by(2)
        .map(String::from)
        .collect();
    (!keys.is_empty()).then_some(keys)
}

/// The first column of the document's key table, with `[table]` rows as table names.
fn documented() -> (BTreeSet<String>, BTreeSet<String>) {
    let section = DOC
        .split("\n## Keys\n")
        .nth(1)
        .expect("a Keys section")
        .split("\n## ")
        .next()
        .unwrap();
    let (mut keys, mut tables) = (BTreeSet::new(), BTreeSet::new());
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let cell = line.split('`').nth(1).unwrap();
        match cell.strip_prefix('[').and_then(|c| c.strip_suffix(']')) {
            Some(table) => {
                tables.insert(table.to_string());
                keys.insert(table.to_string());
            }
            None => {
                keys.insert(cell.to_string());
            }
        }
    }
    (keys, tables)
}

#[test]
fn every_key_the_parser_knows_is_documented_and_no_other() {
    let (documented, documented_tables) = documented();
    // Every key is probed as a table too: the parser, not the document, says which are tables.
    let (mut known, mut tables) = (BTreeSet::new(), BTreeSet::new());
    let mut pending = vec![String::new()];
    while let Some(table) = pending.pop() {
        let keys = keys_of(&table).unwrap_or_else(|| panic!("`{table}` is not a table"));
        for key in keys {
            let full = if table.is_empty() {
                key
            } else {
                format!("{table}.{key}")
            };
            if keys_of(&full).is_some() {
                tables.insert(full.clone());
                pending.push(full.clone());
            }
            known.insert(full);
        }
    }
    assert!(
        known.len() > 20 && tables.len() >= 5,
        "{known:?} {tables:?}"
    );
    let undocumented: Vec<_> = known.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&known).collect();
    assert!(
        undocumented.is_empty() && unknown.is_empty(),
        "keys the parser accepts but docs/configuration.md lacks: {undocumented:?}; \
         documented keys the parser refuses: {unknown:?}"
    );
    assert_eq!(
        tables, documented_tables,
        "the tables of the parser and the `[table]` rows of the document"
    );
}

#[test]
fn the_documented_example_parses() {
    let example = DOC
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a TOML example");
    Config::parse(example, Path::new("/srv/coop/vaten.toml")).expect("the example is valid");
}
