//! `feeders.csv` in the registry folder: the street cables as they lie in the ground. Nodes
//! joined by segments (length, cable type), and which connection hangs on which node, on
//! which phase, with its inverter on which phase. Optional; `vaten simulate --cable` uses it
//! when it is there. Every problem is reported as `file:line: what is wrong`, all at once.
//!
//! One file, two kinds of rows (`kind`):
//! - `segment`: `node` is fed from `from_node` over `length_m` metres of `cable_type`. Each
//!   cable's transformer is the node `transformer`; every other node is fed by exactly one
//!   segment and reaches the transformer (a radial feeder: no loops, nothing dangling).
//! - `connection`: the registry's `ean` hangs on `node`; `phase` is `3` (three-phase, the
//!   usual 3x25 A) or `L1`/`L2`/`L3`; `inverter_phase` the phase of a single-phase inverter
//!   (`L1`..`L3`, on a three-phase connection any of them; on a single-phase one its own), or
//!   `3` or empty for a three-phase inverter (or none).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use crate::error::{Error, Result};
use crate::registry::{field, read_rows, Registry};

/// The name of every cable's source node.
pub const TRANSFORMER: &str = "transformer";

/// A standard cable type: resistance and reactance of one conductor per km at 20 °C. The
/// neutral is the fourth core of the same cross-section.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CableType {
    pub name: &'static str,
    pub r_ohm_per_km: f64,
    pub x_ohm_per_km: f64,
}

/// NAYY 4x150/120/50 SE are pandapower's standard types (its `std_types`, after Heuck et al.,
/// Elektrische Energieversorgung); pandapower has no 4x95: its R is IEC 60228's aluminium
/// conductor of 95 mm² (0.320 Ω/km at 20 °C), its X that of the neighbouring sizes.
pub const CABLE_TYPES: &[CableType] = &[
    CableType {
        name: "NAYY 4x150",
        r_ohm_per_km: 0.208,
        x_ohm_per_km: 0.080,
    },
    CableType {
        name: "NAYY 4x120",
        r_ohm_per_km: 0.225,
        x_ohm_per_km: 0.080,
    },
    CableType {
        name: "NAYY 4x95",
        r_ohm_per_km: 0.320,
        x_ohm_per_km: 0.082,
    },
    CableType {
        name: "NAYY 4x50",
        r_ohm_per_km: 0.642,
        x_ohm_per_km: 0.083,
    },
];

/// Phases of a connection or an inverter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phases {
    Three,
    /// L1, L2 or L3 as 0, 1, 2.
    One(usize),
}

impl Phases {
    fn parse(s: &str) -> Option<Phases> {
        match s {
            "3" => Some(Phases::Three),
            "L1" => Some(Phases::One(0)),
            "L2" => Some(Phases::One(1)),
            "L3" => Some(Phases::One(2)),
            _ => None,
        }
    }

    pub fn label(self) -> String {
        match self {
            Phases::Three => "3".into(),
            Phases::One(p) => format!("L{}", p + 1),
        }
    }

    /// `w` spread over the phases: all on one, or a third on each.
    pub fn spread(self, w: f64) -> [f64; 3] {
        match self {
            Phases::Three => [w / 3.0; 3],
            Phases::One(p) => {
                let mut out = [0.0; 3];
                out[p] = w;
                out
            }
        }
    }
}

/// One node other than the transformer, fed by one segment.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub id: String,
    /// Index of the node it is fed from; `None`: the transformer.
    pub parent: Option<usize>,
    pub length_m: f64,
    pub cable_type: CableType,
}

/// A connection on a node.
#[derive(Debug, Clone, PartialEq)]
pub struct Placement {
    pub ean: String,
    pub node: usize,
    pub phases: Phases,
    pub inverter: Phases,
}

/// One cable's feeder: nodes with parents before children.
#[derive(Debug, Clone, PartialEq)]
pub struct Topology {
    pub cable_id: String,
    pub nodes: Vec<Node>,
    pub placements: Vec<Placement>,
}

impl Topology {
    /// Distance of every node from the transformer along the cable, m.
    pub fn distance_m(&self) -> Vec<f64> {
        let mut out = vec![0.0; self.nodes.len()];
        for (k, n) in self.nodes.iter().enumerate() {
            out[k] = n.parent.map_or(0.0, |p| out[p]) + n.length_m;
        }
        out
    }

    /// A straight cable: node `n1` … `n<count>` every `spacing_m` metres of NAYY 4x150.
    pub fn line(cable_id: &str, count: usize, spacing_m: f64) -> Topology {
        Topology {
            cable_id: cable_id.to_string(),
            nodes: (0..count)
                .map(|k| Node {
                    id: format!("n{}", k + 1),
                    parent: k.checked_sub(1),
                    length_m: spacing_m,
                    cable_type: CABLE_TYPES[0],
                })
                .collect(),
            placements: Vec::new(),
        }
    }
}

const COLUMNS: &[&str] = &[
    "cable_id",
    "kind",
    "node",
    "from_node",
    "length_m",
    "cable_type",
    "ean",
    "phase",
    "inverter_phase",
];
const REQUIRED: &[&str] = &["cable_id", "kind", "node"];

/// The longest segment accepted: a low-voltage street cable is rarely over a kilometre.
const MAX_SEGMENT_M: f64 = 2_000.0;
/// Nodes per cable: a street cable has tens to a few hundred.
const MAX_NODES: usize = 2_000;

/// A node id: letters, digits, `.`, `_`, `-`, at most 64 (it ends up in CSV, tables and SVG).
fn valid_node_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Reads `feeders.csv` from the registry folder `dir`: `None` when there is none.
pub fn load(dir: &Path, registry: &Registry) -> Result<Option<BTreeMap<String, Topology>>> {
    let path = dir.join("feeders.csv");
    if !path.exists() {
        return Ok(None);
    }
    let mut problems = Vec::new();
    let rows = read_rows(&path, COLUMNS, REQUIRED, &mut problems);
    let out = check(&path.display().to_string(), &rows, registry, &mut problems);
    if !problems.is_empty() {
        return Err(Error::Usage(format!(
            "feeders refused:\n{}",
            problems.join("\n")
        )));
    }
    Ok(Some(out))
}

type Row = HashMap<String, String>;
type Rows = [(u64, Row)];

/// A segment row as read: (line, node, from, length, type).
struct SegmentRow {
    line: u64,
    node: String,
    from: String,
    length_m: f64,
    cable_type: CableType,
}

fn check(
    shown: &str,
    rows: &Rows,
    registry: &Registry,
    problems: &mut Vec<String>,
) -> BTreeMap<String, Topology> {
    let mut segments: BTreeMap<String, Vec<SegmentRow>> = BTreeMap::new();
    // Cables with a refused row: their tree is not checked further (it would only report
    // what the refused row left out).
    let mut refused: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    let mut connections: BTreeMap<String, Vec<(u64, &Row)>> = BTreeMap::new();
    for (line, row) in rows {
        let mut bad = |m: String| problems.push(format!("{shown}:{line}: {m}"));
        let cable = field(row, "cable_id");
        if !registry.cables.contains_key(cable) {
            bad(format!("cable `{cable}` is not in cables.csv"));
            continue;
        }
        let node = field(row, "node");
        if !valid_node_id(node) {
            bad(format!(
                "node `{}` is not an id of 1 to 64 letters, digits, `.`, `_` or `-`",
                node.chars().take(64).collect::<String>()
            ));
            // A refused row may leave others of its cable looking wrong: judge it no further.
            refused.insert(cable.to_string());
            continue;
        }
        match field(row, "kind") {
            "segment" => {
                if node == TRANSFORMER {
                    bad(format!("the {TRANSFORMER} is fed by no segment"));
                    refused.insert(cable.to_string());
                    continue;
                }
                let from = field(row, "from_node");
                if from.is_empty() {
                    bad("a segment needs from_node".into());
                    refused.insert(cable.to_string());
                    continue;
                }
                let length_m = match field(row, "length_m").parse::<f64>() {
                    Ok(m) if m > 0.0 && m <= MAX_SEGMENT_M => m,
                    _ => {
                        bad(format!(
                            "length_m `{}` is not a length in metres (over 0, at most {MAX_SEGMENT_M})",
                            field(row, "length_m")
                        ));
                        refused.insert(cable.to_string());
                        continue;
                    }
                };
                let name = field(row, "cable_type");
                let Some(cable_type) = CABLE_TYPES.iter().find(|t| t.name == name) else {
                    bad(format!(
                        "unknown cable_type `{name}` (known: {})",
                        CABLE_TYPES
                            .iter()
                            .map(|t| t.name)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                    refused.insert(cable.to_string());
                    continue;
                };
                segments
                    .entry(cable.to_string())
                    .or_default()
                    .push(SegmentRow {
                        line: *line,
                        node: node.to_string(),
                        from: from.to_string(),
                        length_m,
                        cable_type: *cable_type,
                    });
            }
            "connection" => connections
                .entry(cable.to_string())
                .or_default()
                .push((*line, row)),
            other => bad(format!(
                "kind `{other}` is neither `segment` nor `connection`"
            )),
        }
    }
    let mut out = BTreeMap::new();
    for (cable, rows) in segments {
        if refused.contains(&cable) {
            connections.remove(&cable);
            continue;
        }
        if rows.len() > MAX_NODES {
            problems.push(format!(
                "{shown}:{}: cable {cable} has {} segments; at most {MAX_NODES}",
                rows[MAX_NODES].line,
                rows.len()
            ));
            connections.remove(&cable);
            continue;
        }
        let Some(nodes) = tree(shown, &rows, problems) else {
            connections.remove(&cable);
            continue;
        };
        let index: HashMap<&str, usize> = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.id.as_str(), i))
            .collect();
        let mut placements = Vec::new();
        let mut placed: HashMap<String, u64> = HashMap::new();
        for (line, row) in connections.remove(&cable).unwrap_or_default() {
            let mut bad = |m: String| problems.push(format!("{shown}:{line}: {m}"));
            let ean = field(row, "ean");
            let node = field(row, "node");
            let Some(&at) = index.get(node) else {
                bad(format!(
                    "connection {ean} hangs on node `{node}`, which no segment of cable {cable} feeds"
                ));
                continue;
            };
            match registry.connection(ean) {
                None => {
                    bad(format!("connection {ean} is not in connections.csv"));
                    continue;
                }
                Some(c) if c.cable_id != cable => {
                    bad(format!(
                        "connection {ean} is on cable {} in connections.csv, not {cable}",
                        c.cable_id
                    ));
                    continue;
                }
                Some(_) => {}
            }
            if let Some(first) = placed.insert(ean.to_string(), line) {
                bad(format!(
                    "connection {ean} is placed twice (first on line {first})"
                ));
                continue;
            }
            let Some(phases) = Phases::parse(field(row, "phase")) else {
                bad(format!(
                    "phase `{}` is not 3, L1, L2 or L3",
                    field(row, "phase")
                ));
                continue;
            };
            let inverter = match (field(row, "inverter_phase"), phases) {
                ("", p) => p,
                (s, p) => match (Phases::parse(s), p) {
                    (Some(i), Phases::Three) => i,
                    (Some(i), Phases::One(_)) if i == p => i,
                    (Some(i), Phases::One(_)) => {
                        bad(format!(
                            "a single-phase connection on {} cannot have its inverter on {}",
                            p.label(),
                            i.label()
                        ));
                        continue;
                    }
                    (None, _) => {
                        bad(format!("inverter_phase `{s}` is not 3, L1, L2 or L3"));
                        continue;
                    }
                },
            };
            placements.push(Placement {
                ean: ean.to_string(),
                node: at,
                phases,
                inverter,
            });
        }
        for c in registry.connections.iter().filter(|c| c.cable_id == cable) {
            if !placed.contains_key(c.ean.as_str()) {
                problems.push(format!(
                    "{shown}: connection {} of cable {cable} (connections.csv) hangs on no node",
                    c.ean
                ));
            }
        }
        out.insert(
            cable.clone(),
            Topology {
                cable_id: cable,
                nodes,
                placements,
            },
        );
    }
    for (cable, rows) in connections {
        if refused.contains(&cable) {
            continue;
        }
        for (line, _) in rows {
            problems.push(format!(
                "{shown}:{line}: cable {cable} has connections but no segments"
            ));
        }
    }
    out
}

/// The nodes of one cable, parents before children, or `None` after reporting why not.
fn tree(shown: &str, rows: &[SegmentRow], problems: &mut Vec<String>) -> Option<Vec<Node>> {
    let before = problems.len();
    let mut fed_by: HashMap<&str, &SegmentRow> = HashMap::new();
    for r in rows {
        if let Some(first) = fed_by.insert(&r.node, r) {
            problems.push(format!(
                "{shown}:{}: node `{}` is fed a second time (first on line {}): a loop; a street cable is radial",
                r.line, r.node, first.line
            ));
        }
    }
    // Walk up from every node: the transformer must be reached without passing a node twice.
    for r in rows {
        let mut at = r.from.as_str();
        let mut steps = 0;
        while at != TRANSFORMER {
            match fed_by.get(at) {
                None => {
                    problems.push(format!(
                        "{shown}:{}: node `{}` dangles: `{at}` is fed by no segment and is not the {TRANSFORMER}",
                        r.line, r.node
                    ));
                    break;
                }
                Some(up) => {
                    steps += 1;
                    if up.node == r.node || steps > rows.len() {
                        problems.push(format!(
                            "{shown}:{}: node `{}` lies on a loop that never reaches the {TRANSFORMER}",
                            r.line, r.node
                        ));
                        break;
                    }
                    at = up.from.as_str();
                }
            }
        }
    }
    if problems.len() > before {
        return None;
    }
    // Parents before children: breadth-first from the transformer, in file order.
    let mut nodes: Vec<Node> = Vec::with_capacity(rows.len());
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut frontier = vec![TRANSFORMER];
    while !frontier.is_empty() {
        let mut next = Vec::new();
        for parent in frontier {
            for r in rows.iter().filter(|r| r.from == parent) {
                index.insert(&r.node, nodes.len());
                nodes.push(Node {
                    id: r.node.clone(),
                    parent: (parent != TRANSFORMER).then(|| index[parent]),
                    length_m: r.length_m,
                    cable_type: r.cable_type,
                });
                next.push(r.node.as_str());
            }
        }
        frontier = next;
    }
    Some(nodes)
}

/// Writes `topologies` as `feeders.csv` in `dir` (the demo's registry).
pub fn write(dir: &Path, topologies: &[Topology]) -> Result<()> {
    let path = dir.join("feeders.csv");
    let mut w = csv::Writer::from_path(&path)
        .map_err(|e| Error::Usage(format!("{}: {e}", path.display())))?;
    let io = |e: csv::Error| Error::Usage(format!("{}: {e}", path.display()));
    w.write_record(COLUMNS).map_err(io)?;
    for t in topologies {
        for n in &t.nodes {
            let from = n.parent.map_or(TRANSFORMER, |p| t.nodes[p].id.as_str());
            let length = format!("{}", n.length_m);
            w.write_record([
                t.cable_id.as_str(),
                "segment",
                &n.id,
                from,
                &length,
                n.cable_type.name,
                "",
                "",
                "",
            ])
            .map_err(io)?;
        }
        for p in &t.placements {
            w.write_record([
                t.cable_id.as_str(),
                "connection",
                &t.nodes[p.node].id,
                "",
                "",
                "",
                &p.ean,
                &p.phases.label(),
                &p.inverter.label(),
            ])
            .map_err(io)?;
        }
    }
    w.flush()
        .map_err(|e| Error::Usage(format!("{}: {e}", path.display())))?;
    Ok(())
}
