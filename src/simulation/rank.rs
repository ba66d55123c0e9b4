//! `vaten simulate --rank-positions`: where on a cable one more installation does the most
//! good. For every node with a connection and no installation, the node's first such
//! connection gets the typical installation (battery and panels, under the firmware's
//! controller) and the period is simulated again; the nodes are ranked by how many fewer
//! quarter-hours some house spent beyond the cable's agreed limits, then by how much the
//! transformer's peak import and then its peak export came down.
//!
//! Every run is the same deterministic simulation but for that one installation, so a
//! registry that adds the top-ranked installation simulates to exactly the reported figures.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use super::cable::Typical;
use super::{CableStats, Scenario, Simulation};

/// One candidate position and what an installation there changes.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranked {
    pub node: usize,
    pub node_id: String,
    pub distance_m: f64,
    /// The connection that gets the installation.
    pub ean: String,
    /// Quarter-hours beyond the limits with the installation.
    pub beyond: u64,
    /// Reductions against the cable as it is (negative: worse).
    pub fewer_beyond: i64,
    pub import_peak_down_w: f64,
    pub export_peak_down_w: f64,
}

/// Nodes of the scenario's first cable that have a connection and no installation, each with
/// its first connection without one (house index).
pub fn candidates(base: &Scenario) -> Vec<(usize, usize)> {
    let nodes = base.cables[0].topology.nodes.len();
    (0..nodes)
        .filter_map(|node| {
            let here: Vec<usize> = (0..base.houses.len())
                .filter(|&i| base.houses[i].cable == 0 && base.houses[i].node == node)
                .collect();
            let installed = here.iter().any(|&i| base.houses[i].battery_wh.is_some());
            (!installed)
                .then(|| here.first().copied())
                .flatten()
                .map(|h| (node, h))
        })
        .collect()
}

fn run(sc: Scenario, end: DateTime<Utc>) -> CableStats {
    let mut sim = Simulation::new(sc);
    sim.run_until(end, &mut |_| {});
    sim.stats[0]
}

/// The cable as it is, and every candidate ranked; simulated on `threads` threads.
pub fn rank(
    base: &Scenario,
    end: DateTime<Utc>,
    typical: Typical,
    threads: usize,
) -> (CableStats, Vec<Ranked>) {
    let candidates = candidates(base);
    let distance = base.cables[0].topology.distance_m();
    let with = |&(node, house): &(usize, usize)| {
        let mut sc = base.clone();
        sc.houses[house].battery_wh = Some(typical.battery_wh);
        sc.houses[house].pv_kwp = typical.panels_w / 1000.0;
        (node, house, run(sc, end))
    };
    let threads = threads.max(1);
    let chunk = candidates.len().div_ceil(threads).max(1);
    let (before, mut runs) = std::thread::scope(|scope| {
        let handles: Vec<_> = candidates
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(with).collect::<Vec<_>>()))
            .collect();
        let before = run(base.clone(), end);
        let runs: Vec<_> = handles
            .into_iter()
            .flat_map(|h| h.join().expect("simulation thread"))
            .collect();
        (before, runs)
    });
    runs.sort_by_key(|(node, _, _)| *node);
    let mut ranked: Vec<Ranked> = runs
        .into_iter()
        .map(|(node, house, s)| Ranked {
            node,
            node_id: base.cables[0].topology.nodes[node].id.clone(),
            distance_m: distance[node],
            ean: base.houses[house].ean.clone(),
            beyond: s.quarters_beyond_band,
            fewer_beyond: before.quarters_beyond_band as i64 - s.quarters_beyond_band as i64,
            import_peak_down_w: before.peak_import_w - s.peak_import_w,
            export_peak_down_w: before.peak_export_w - s.peak_export_w,
        })
        .collect();
    ranked.sort_by(|a, b| {
        b.fewer_beyond
            .cmp(&a.fewer_beyond)
            .then(b.import_peak_down_w.total_cmp(&a.import_peak_down_w))
            .then(b.export_peak_down_w.total_cmp(&a.export_peak_down_w))
            .then(a.node.cmp(&b.node))
    });
    (before, ranked)
}

/// The ranking as CSV.
pub fn csv(before: &CableStats, ranked: &[Ranked]) -> String {
    let mut o = String::from(
        "rank,node,distance_m,ean,quarters_beyond_before,quarters_beyond_after,fewer_quarters_beyond,import_peak_down_w,export_peak_down_w\n",
    );
    for (i, r) in ranked.iter().enumerate() {
        let _ = writeln!(
            o,
            "{},{},{:.0},{},{},{},{},{:.0},{:.0}",
            i + 1,
            r.node_id,
            r.distance_m,
            r.ean,
            before.quarters_beyond_band,
            r.beyond,
            r.fewer_beyond,
            r.import_peak_down_w,
            r.export_peak_down_w
        );
    }
    o
}

/// The ranking as a Markdown table for the terminal.
pub fn table(before: &CableStats, ranked: &[Ranked]) -> String {
    let mut o = format!(
        "The cable as it is: {} quarter-hours beyond the limits, peak import {:.1} kW, peak export {:.1} kW.\n\n\
         | rank | node | m from transformer | connection | ¼ h beyond | fewer ¼ h beyond | peak import −kW | peak export −kW |\n|---|---|---|---|---|---|---|---|\n",
        before.quarters_beyond_band,
        before.peak_import_w / 1000.0,
        before.peak_export_w / 1000.0
    );
    for (i, r) in ranked.iter().enumerate() {
        let _ = writeln!(
            o,
            "| {} | {} | {:.0} | {} | {} | {} | {:.2} | {:.2} |",
            i + 1,
            r.node_id,
            r.distance_m,
            r.ean,
            r.beyond,
            r.fewer_beyond,
            r.import_peak_down_w / 1000.0,
            r.export_peak_down_w / 1000.0
        );
    }
    o
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The cable drawn from the transformer (left) out, a branch per lane: ranked nodes green by
/// how much they help, their rank above them; nodes with an installation already as blue
/// squares.
pub fn svg(base: &Scenario, ranked: &[Ranked]) -> String {
    let topo = &base.cables[0].topology;
    let distance = topo.distance_m();
    let n = topo.nodes.len();
    // A lane per branch: a node continues its parent's lane when it is the parent's first
    // child, else opens a new lane below.
    let mut lane = vec![0usize; n];
    let mut next_lane = 1;
    let mut first_child_taken = vec![false; n + 1];
    for k in 0..n {
        let slot = topo.nodes[k].parent.map_or(n, |p| p);
        let parent_lane = topo.nodes[k].parent.map_or(0, |p| lane[p]);
        if first_child_taken[slot] {
            lane[k] = next_lane;
            next_lane += 1;
        } else {
            first_child_taken[slot] = true;
            lane[k] = parent_lane;
        }
    }
    let max_m = distance.iter().copied().fold(1.0, f64::max);
    let (w, left, top, step) = (900.0, 60.0, 70.0, 48.0);
    let x = |m: f64| left + (w - left - 40.0) * m / max_m;
    let y = |l: usize| top + step * l as f64;
    let height = top + step * next_lane as f64 + 40.0;
    let best = ranked
        .iter()
        .map(|r| r.fewer_beyond)
        .max()
        .unwrap_or(0)
        .max(1);
    let mut o = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"11\">\n\
         <text x=\"10\" y=\"22\" font-size=\"15\">Cable {}: where one more installation helps most</text>\n\
         <text x=\"10\" y=\"42\" fill=\"#555\">green: fewer quarter-hours beyond the limits (number: rank); blue square: installation already there</text>\n\
         <rect x=\"{}\" y=\"{}\" width=\"12\" height=\"12\" fill=\"#222\"/>\n",
        escape(&base.cables[0].cable_id),
        left - 18.0,
        y(0) - 6.0
    );
    for k in 0..n {
        let (px, py) = match topo.nodes[k].parent {
            Some(p) => (x(distance[p]), y(lane[p])),
            None => (left - 12.0, y(0)),
        };
        let (cx, cy) = (x(distance[k]), y(lane[k]));
        let _ = writeln!(
            o,
            "<polyline points=\"{px:.1},{py:.1} {px:.1},{cy:.1} {cx:.1},{cy:.1}\" fill=\"none\" stroke=\"#888\" stroke-width=\"2\"/>"
        );
    }
    for k in 0..n {
        let (cx, cy) = (x(distance[k]), y(lane[k]));
        let installed = base
            .houses
            .iter()
            .any(|h| h.cable == 0 && h.node == k && h.battery_wh.is_some());
        if installed {
            let _ = writeln!(
                o,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"10\" height=\"10\" fill=\"#2c7bb6\"/>",
                cx - 5.0,
                cy - 5.0
            );
        } else if let Some((rank, r)) = ranked.iter().enumerate().find(|(_, r)| r.node == k) {
            let share = (r.fewer_beyond.max(0) as f64 / best as f64).clamp(0.0, 1.0);
            let green = format!(
                "rgb({:.0},{:.0},{:.0})",
                220.0 - 194.0 * share,
                220.0 - 68.0 * share,
                220.0 - 140.0 * share
            );
            let _ = writeln!(
                o,
                "<circle cx=\"{cx:.1}\" cy=\"{cy:.1}\" r=\"7\" fill=\"{green}\" stroke=\"#333\"/><text x=\"{cx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                cy - 11.0,
                rank + 1
            );
        } else {
            let _ = writeln!(
                o,
                "<circle cx=\"{cx:.1}\" cy=\"{cy:.1}\" r=\"3\" fill=\"#888\"/>"
            );
        }
        let _ = writeln!(
            o,
            "<text x=\"{cx:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#555\" font-size=\"9\">{}</text>",
            cy + 19.0,
            escape(&topo.nodes[k].id)
        );
    }
    o += "</svg>\n";
    o
}
