//! The registry: `connections.csv` and `cables.csv` (`docs/configuration.md`).
//! Every rule is checked and every problem is reported as `file:line: what is wrong`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use chrono::NaiveDate;

use crate::domain::Ean;
use crate::error::{Error, Result};

/// A participant id as a file name (`<stem>.html` of the participant's statement): letters,
/// digits, `-` and `_` kept, anything else `_`. Two ids with the same stem are refused when the
/// registry is loaded, so that one participant's statement can never overwrite another's.
pub fn statement_file_stem(participant: &str) -> String {
    participant
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Parses a certificate fingerprint (`installation_cert_sha256`): 64 hex digits, colons or spaces between pairs allowed.
pub fn parse_fingerprint(s: &str) -> Option<[u8; 32]> {
    let hex: Vec<u8> = s.bytes().filter(|b| *b != b':' && *b != b' ').collect();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in hex.chunks(2).enumerate() {
        let text = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(text, 16).ok()?;
    }
    Some(out)
}

/// Default physical limit of a connection: 3 × 230 V × 25 A.
pub const DEFAULT_CAPACITY_W: i64 = 17_250;

#[derive(Debug, Clone)]
pub struct Connection {
    pub ean: Ean,
    pub participant_id: String,
    pub cable_id: String,
    pub installation: Option<Installation>,
    pub tax_credit: bool,
    pub capacity_w: i64,
    /// What the installation's panels and inverter can deliver, in W; a production-register
    /// step above `production_capacity_w / 4` Wh in a quarter-hour is impossible. Defaults to
    /// `capacity_w`.
    pub production_capacity_w: i64,
    /// The operator's explicit consent to pull this installation over plain `http` from a
    /// public address (the token travels unencrypted); without it such a pull is refused.
    pub installation_http_public: bool,
    /// The installation's certificate pinned by its SHA-256 fingerprint: the controller's
    /// self-signed certificate is accepted, and no other.
    pub installation_cert_sha256: Option<[u8; 32]>,
    /// The authorisation the holder gave the cooperative to fetch the connection's data
    /// (inclusive local days the data is about); none given: no limit.
    pub consent_from: Option<NaiveDate>,
    pub consent_until: Option<NaiveDate>,
    pub member_from: Option<NaiveDate>,
    pub member_until: Option<NaiveDate>,
}

#[derive(Debug, Clone)]
pub struct Installation {
    pub id: String,
    pub url: String,
}

#[derive(Debug, Clone)]
pub struct Cable {
    pub cable_id: String,
    pub substation: String,
    pub v_low_v: f64,
    pub v_high_v: f64,
}

#[derive(Debug, Clone, Default)]
pub struct Registry {
    pub connections: Vec<Connection>,
    pub cables: BTreeMap<String, Cable>,
    by_ean: HashMap<String, usize>,
}

const CONNECTION_COLUMNS: &[&str] = &[
    "ean",
    "participant_id",
    "cable_id",
    "installation_id",
    "installation_url",
    "tax_credit",
    "capacity_w",
    "production_capacity_w",
    "installation_http_public",
    "installation_cert_sha256",
    "consent_from",
    "consent_until",
    "member_from",
    "member_until",
];
const CABLE_COLUMNS: &[&str] = &["cable_id", "substation", "v_low_v", "v_high_v"];

impl Connection {
    /// Whether the holder's authorisation covers the local day `day` the data is about.
    pub fn consents_to(&self, day: NaiveDate) -> bool {
        self.consent_from.is_none_or(|f| day >= f) && self.consent_until.is_none_or(|u| day <= u)
    }
}

impl Registry {
    /// Loads `connections.csv` and `cables.csv` from `dir`; all problems at once, exit 2.
    pub fn load(dir: &Path) -> Result<Self> {
        let mut problems = Vec::new();
        let cables_path = dir.join("cables.csv");
        let connections_path = dir.join("connections.csv");
        let cables = read_cables(&cables_path, &mut problems);
        let connections = read_connections(&connections_path, &cables, &mut problems);
        if !problems.is_empty() {
            return Err(Error::Usage(format!(
                "registry refused:\n{}",
                problems.join("\n")
            )));
        }
        Ok(Self::new(connections, cables))
    }

    pub fn new(connections: Vec<Connection>, cables: BTreeMap<String, Cable>) -> Self {
        let by_ean = connections
            .iter()
            .enumerate()
            .map(|(i, c)| (c.ean.as_str().to_string(), i))
            .collect();
        Registry {
            connections,
            cables,
            by_ean,
        }
    }

    /// The EANs and installation ids of a participant's connections (empty when the
    /// participant is not in the registry).
    pub fn participant_ids(&self, participant: &str) -> std::collections::BTreeSet<String> {
        let mut ids = std::collections::BTreeSet::new();
        for c in self
            .connections
            .iter()
            .filter(|c| c.participant_id == participant)
        {
            ids.insert(c.ean.as_str().to_string());
            if let Some(i) = &c.installation {
                ids.insert(i.id.clone());
            }
        }
        ids
    }

    /// Each installation's id with the connection it sits behind.
    pub fn installations(&self) -> impl Iterator<Item = (&str, &Connection)> {
        self.connections
            .iter()
            .filter_map(|c| c.installation.as_ref().map(|i| (i.id.as_str(), c)))
    }

    /// The registry of the connections on the cables `on` accepts (all cables still known).
    pub fn on_cables(&self, on: impl Fn(&str) -> bool) -> Registry {
        let connections = self
            .connections
            .iter()
            .filter(|c| on(&c.cable_id))
            .cloned()
            .collect();
        Registry::new(connections, self.cables.clone())
    }

    /// The cables that have connections, sorted.
    pub fn cables_in_use(&self) -> std::collections::BTreeSet<String> {
        self.connections
            .iter()
            .map(|c| c.cable_id.clone())
            .collect()
    }

    /// Connections whose consent ends within `days` days after `today` (or has just ended), as
    /// lines for people: the cooperative must renew them before data stops being fetched.
    pub fn consents_ending(&self, today: NaiveDate, days: i64) -> Vec<String> {
        let mut out: Vec<(NaiveDate, String)> = self
            .connections
            .iter()
            .filter_map(|c| {
                let until = c.consent_until?;
                let left = (until - today).num_days();
                (-1..=days).contains(&left).then(|| {
                    (
                        until,
                        format!(
                            "consent for {} (participant {}) ends {until}{}",
                            c.ean,
                            c.participant_id,
                            match left {
                                -1 => " (ended yesterday)".to_string(),
                                0 => " (today)".to_string(),
                                n => format!(" (in {n} days)"),
                            }
                        ),
                    )
                })
            })
            .collect();
        out.sort();
        out.into_iter().map(|(_, line)| line).collect()
    }

    pub fn connection(&self, ean: &str) -> Option<&Connection> {
        self.by_ean.get(ean).map(|&i| &self.connections[i])
    }

    /// Writes the registry as the two CSV files (used by the demo and tests).
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir)?;
        let mut cables = String::from("cable_id,substation,v_low_v,v_high_v\n");
        for c in self.cables.values() {
            cables += &format!(
                "{},{},{},{}\n",
                c.cable_id, c.substation, c.v_low_v, c.v_high_v
            );
        }
        let mut conns = CONNECTION_COLUMNS.join(",") + "\n";
        let date = |d: Option<NaiveDate>| d.map(|d| d.to_string()).unwrap_or_default();
        for c in &self.connections {
            let (id, url) = c
                .installation
                .as_ref()
                .map(|i| (i.id.as_str(), i.url.as_str()))
                .unwrap_or(("", ""));
            conns += &format!(
                "{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
                c.ean,
                c.participant_id,
                c.cable_id,
                id,
                url,
                c.tax_credit,
                c.capacity_w,
                c.production_capacity_w,
                c.installation_http_public,
                c.installation_cert_sha256
                    .map(|f| f.iter().map(|b| format!("{b:02x}")).collect::<String>())
                    .unwrap_or_default(),
                date(c.consent_from),
                date(c.consent_until),
                date(c.member_from),
                date(c.member_until)
            );
        }
        std::fs::write(dir.join("cables.csv"), cables)?;
        std::fs::write(dir.join("connections.csv"), conns)?;
        Ok(())
    }
}

/// Rows of a CSV file as (line number, column → value), with header problems reported.
pub(crate) fn read_rows(
    path: &Path,
    allowed: &[&str],
    required: &[&str],
    problems: &mut Vec<String>,
) -> Vec<(u64, HashMap<String, String>)> {
    let shown = path.display();
    let mut reader = match csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(path)
    {
        Ok(r) => r,
        Err(e) => {
            problems.push(format!("{shown}: cannot read: {e}"));
            return Vec::new();
        }
    };
    let headers: Vec<String> = match reader.headers() {
        Ok(h) => h.iter().map(str::to_string).collect(),
        Err(e) => {
            problems.push(format!("{shown}:1: bad header: {e}"));
            return Vec::new();
        }
    };
    for h in &headers {
        if !allowed.contains(&h.as_str()) {
            problems.push(format!(
                "{shown}:1: unknown column `{h}` (known: {})",
                allowed.join(", ")
            ));
        }
    }
    for r in required {
        if !headers.iter().any(|h| h == r) {
            problems.push(format!("{shown}:1: required column `{r}` is missing"));
        }
    }
    let mut rows = Vec::new();
    for record in reader.records() {
        match record {
            Ok(rec) => {
                let line = rec.position().map(|p| p.line()).unwrap_or(0);
                let map = headers
                    .iter()
                    .cloned()
                    .zip(rec.iter().map(str::to_string))
                    .collect();
                rows.push((line, map));
            }
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                problems.push(format!("{shown}:{line}: {e}"));
            }
        }
    }
    rows
}

pub(crate) fn field<'a>(row: &'a HashMap<String, String>, name: &str) -> &'a str {
    row.get(name).map(String::as_str).unwrap_or("")
}

fn read_cables(path: &Path, problems: &mut Vec<String>) -> BTreeMap<String, Cable> {
    let shown = path.display();
    let mut cables = BTreeMap::new();
    for (line, row) in read_rows(path, CABLE_COLUMNS, CABLE_COLUMNS, problems) {
        let mut bad = |m: String| problems.push(format!("{shown}:{line}: {m}"));
        let id = field(&row, "cable_id");
        if id.is_empty() {
            bad("cable_id is empty".into());
            continue;
        }
        let volts = |name: &str| -> std::result::Result<f64, String> {
            let s = field(&row, name);
            match s.parse::<f64>() {
                Ok(v) if (100.0..=300.0).contains(&v) => Ok(v),
                Ok(v) => Err(format!("{name} {v} V is outside 100..=300 V")),
                Err(_) => Err(format!("{name} `{s}` is not a number of volts")),
            }
        };
        let (low, high) = match (volts("v_low_v"), volts("v_high_v")) {
            (Ok(l), Ok(h)) => (l, h),
            (l, h) => {
                for e in [l.err(), h.err()].into_iter().flatten() {
                    bad(e);
                }
                continue;
            }
        };
        if low >= high {
            bad(format!("v_low_v {low} must be below v_high_v {high}"));
            continue;
        }
        let cable = Cable {
            cable_id: id.to_string(),
            substation: field(&row, "substation").to_string(),
            v_low_v: low,
            v_high_v: high,
        };
        if cables.insert(id.to_string(), cable).is_some() {
            bad(format!("duplicate cable_id `{id}`"));
        }
    }
    cables
}

fn read_connections(
    path: &Path,
    cables: &BTreeMap<String, Cable>,
    problems: &mut Vec<String>,
) -> Vec<Connection> {
    let shown = path.display();
    let mut out = Vec::new();
    let mut seen_ean: HashMap<String, u64> = HashMap::new();
    let mut seen_inst: HashSet<String> = HashSet::new();
    // Statement file stem → (participant id, first line).
    let mut stems: HashMap<String, (String, u64)> = HashMap::new();
    let required = &["ean", "participant_id", "cable_id"];
    for (line, row) in read_rows(path, CONNECTION_COLUMNS, required, problems) {
        let before = problems.len();
        let mut bad = |m: String| problems.push(format!("{shown}:{line}: {m}"));
        let ean = match Ean::parse(field(&row, "ean")) {
            Ok(e) => Some(e),
            Err(e) => {
                bad(e.to_string());
                None
            }
        };
        if let Some(e) = &ean {
            if let Some(first) = seen_ean.insert(e.as_str().to_string(), line) {
                bad(format!("duplicate EAN {e} (first on line {first})"));
            }
        }
        let participant_id = field(&row, "participant_id");
        if participant_id.is_empty() {
            bad("participant_id is empty".into());
        }
        let stem = statement_file_stem(participant_id);
        match stems.get(&stem) {
            Some((other, first)) if other != participant_id => bad(format!(
                "participant_id `{participant_id}` would share its statement file `{stem}.html` with `{other}` (line {first}); choose ids that differ in letters or digits"
            )),
            Some(_) => {}
            None => {
                stems.insert(stem, (participant_id.to_string(), line));
            }
        }
        let cable_id = field(&row, "cable_id");
        if !cables.contains_key(cable_id) {
            bad(format!("unknown cable `{cable_id}` (not in cables.csv)"));
        }
        let (inst_id, inst_url) = (
            field(&row, "installation_id"),
            field(&row, "installation_url"),
        );
        let installation = match (inst_id.is_empty(), inst_url.is_empty()) {
            (true, true) => None,
            (false, true) => {
                bad(format!("installation `{inst_id}` has no installation_url"));
                None
            }
            (true, false) => {
                bad("installation_url given without installation_id".into());
                None
            }
            (false, false) => {
                if !(inst_url.starts_with("http://") || inst_url.starts_with("https://")) {
                    bad(format!(
                        "installation_url `{inst_url}` must start with http:// or https://"
                    ));
                }
                if !seen_inst.insert(inst_id.to_string()) {
                    bad(format!("duplicate installation_id `{inst_id}`"));
                }
                Some(Installation {
                    id: inst_id.to_string(),
                    url: inst_url.trim_end_matches('/').to_string(),
                })
            }
        };
        let installation_http_public = match field(&row, "installation_http_public") {
            "" | "false" => false,
            "true" => true,
            other => {
                bad(format!(
                    "installation_http_public `{other}` must be true or false"
                ));
                false
            }
        };
        let installation_cert_sha256 = match field(&row, "installation_cert_sha256") {
            "" => None,
            s => match parse_fingerprint(s) {
                Some(f) => Some(f),
                None => {
                    bad(format!(
                        "installation_cert_sha256 `{s}` must be 64 hex digits (the SHA-256 of the DER certificate)"
                    ));
                    None
                }
            },
        };
        let tax_credit = match field(&row, "tax_credit") {
            "" | "true" => true,
            "false" => false,
            other => {
                bad(format!("tax_credit `{other}` must be true or false"));
                true
            }
        };
        // Up to 100 MW: any real connection, and no overflow in Wh arithmetic.
        let mut watts = |name: &str, default: i64| match field(&row, name) {
            "" => default,
            s => match s.parse::<i64>() {
                Ok(v) if (1..=100_000_000).contains(&v) => v,
                _ => {
                    bad(format!(
                        "{name} `{s}` must be a whole number of watts from 1 to 100,000,000"
                    ));
                    default
                }
            },
        };
        let capacity_w = watts("capacity_w", DEFAULT_CAPACITY_W);
        let production_capacity_w = watts("production_capacity_w", capacity_w);
        let mut date = |name: &str| match field(&row, name) {
            "" => None,
            s => match s.parse::<NaiveDate>() {
                Ok(d) => Some(d),
                Err(_) => {
                    bad(format!("{name} `{s}` is not a date (YYYY-MM-DD)"));
                    None
                }
            },
        };
        let member_from = date("member_from");
        let member_until = date("member_until");
        let consent_from = date("consent_from");
        let consent_until = date("consent_until");
        if let (Some(f), Some(u)) = (member_from, member_until) {
            if f > u {
                problems.push(format!(
                    "{shown}:{line}: member_from {f} is after member_until {u}"
                ));
            }
        }
        if let (Some(f), Some(u)) = (consent_from, consent_until) {
            if f > u {
                problems.push(format!(
                    "{shown}:{line}: consent_from {f} is after consent_until {u}"
                ));
            }
        }
        if problems.len() == before {
            out.push(Connection {
                ean: ean.expect("no problem means a valid EAN"),
                participant_id: participant_id.to_string(),
                cable_id: cable_id.to_string(),
                installation,
                tax_credit,
                capacity_w,
                production_capacity_w,
                installation_http_public,
                installation_cert_sha256,
                consent_from,
                consent_until,
                member_from,
                member_until,
            });
        }
    }
    out
}

/// For tests: a registry with `sizes[i]` connections on cable `K{i+1}` (limits 226–244 V),
/// EANs numbered from 1 in order; every third connection (the 3rd, 6th, … of the whole
/// registry) has an installation.
#[cfg(test)]
pub(crate) fn test_registry(sizes: &[usize]) -> Registry {
    let dir = tempfile::tempdir().unwrap();
    let mut cables = String::from("cable_id,substation,v_low_v,v_high_v\n");
    let mut conns = String::from("ean,participant_id,cable_id,installation_id,installation_url\n");
    let mut n = 0;
    for (i, size) in sizes.iter().enumerate() {
        cables += &format!("K{},TS1,226,244\n", i + 1);
        for _ in 0..*size {
            n += 1;
            let ean = Ean::with_check_digit(&format!("87168712{n:09}")).unwrap();
            let inst = if n % 3 == 0 {
                format!("inst-{n},http://127.0.0.1:9/{n}")
            } else {
                ",".to_string()
            };
            conns += &format!("{},P{n},K{},{inst}\n", ean.as_str(), i + 1);
        }
    }
    std::fs::write(dir.path().join("cables.csv"), cables).unwrap();
    std::fs::write(dir.path().join("connections.csv"), conns).unwrap();
    Registry::load(dir.path()).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, cables: &str, conns: &str) {
        std::fs::write(dir.join("cables.csv"), cables).unwrap();
        std::fs::write(dir.join("connections.csv"), conns).unwrap();
    }

    #[test]
    fn good_registry_loads() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "cable_id,substation,v_low_v,v_high_v\nK1,TS1,226,244\n",
            "ean,participant_id,cable_id,installation_id,installation_url\n\
             871687120000000011,P1,K1,inst-1,http://127.0.0.1:9/\n\
             871687120000000028,P2,K1,,\n",
        );
        let reg = Registry::load(dir.path()).unwrap();
        assert_eq!(reg.connections.len(), 2);
        let c = reg.connection("871687120000000011").unwrap();
        assert_eq!(c.installation.as_ref().unwrap().url, "http://127.0.0.1:9");
        assert_eq!(c.capacity_w, 17_250);
        assert!(c.tax_credit);
        assert!(reg
            .connection("871687120000000028")
            .unwrap()
            .installation
            .is_none());
    }

    #[test]
    fn every_problem_names_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "cable_id,substation,v_low_v,v_high_v\nK1,TS1,226,244\n",
            "ean,participant_id,cable_id,installation_id,installation_url\n\
             871687120000000012,P1,K1,,\n\
             871687120000000011,P2,K1,,\n\
             871687120000000011,P3,K1,,\n\
             871687120000000028,P4,K9,,\n\
             871687120000000035,P5,K1,inst-5,\n",
        );
        let msg = Registry::load(dir.path()).unwrap_err().to_string();
        let f = dir.path().join("connections.csv").display().to_string();
        assert!(
            msg.contains(&format!(
                "{f}:2: EAN `871687120000000012` has check digit 2, expected 1"
            )),
            "{msg}"
        );
        assert!(
            msg.contains(&format!(
                "{f}:4: duplicate EAN 871687120000000011 (first on line 3)"
            )),
            "{msg}"
        );
        assert!(msg.contains(&format!("{f}:5: unknown cable `K9`")), "{msg}");
        assert!(
            msg.contains(&format!(
                "{f}:6: installation `inst-5` has no installation_url"
            )),
            "{msg}"
        );
    }

    #[test]
    fn participant_ids_that_share_a_statement_file_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("cables.csv"),
            "cable_id,substation,v_low_v,v_high_v\nK1,TS,226,244\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("connections.csv"),
            "ean,participant_id,cable_id\n871687120000000011,12.3,K1\n871687120000000028,12.3,K1\n871687120000000035,12_3,K1\n",
        )
        .unwrap();
        let err = Registry::load(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("connections.csv:4: participant_id `12_3` would share its statement file `12_3.html` with `12.3` (line 2)"),
            "{err}"
        );
        // One participant with two connections is fine.
        assert_eq!(err.matches("would share").count(), 1, "{err}");
    }
}
