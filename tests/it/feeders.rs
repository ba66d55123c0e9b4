//! The registry's `feeders.csv`: refused with `file:line` when it is not a radial feeder,
//! ranked positions that hold up when the top one is built, and vaten's solver against
//! Alliander's power-grid-model on the same feeder.

use std::path::Path;
use std::process::{Command, Output};

use vaten::domain::Ean;
use vaten::feeders::{load, Phases};
use vaten::registry::Registry;
use vaten::simulation::network::{Network, Neutral};

use crate::common::*;

fn ean(i: usize) -> String {
    Ean::with_check_digit(&format!("87168712{i:09}"))
        .unwrap()
        .to_string()
}

/// A registry folder with `n` connections on cable K1 (limits `low`:250), those in
/// `installed` with an installation, a straight feeder of `n` nodes `spacing_m` apart of
/// `cable_type`, connection `i` on node `n<i+1>` with `phase`, and `vaten.toml` beside it.
fn registry(dir: &Path, n: usize, installed: &[usize], low: f64, spacing_m: f64, phase: &str) {
    std::fs::create_dir_all(dir.join("registry")).unwrap();
    std::fs::write(
        dir.join("registry/cables.csv"),
        format!("cable_id,substation,v_low_v,v_high_v\nK1,TS,{low},250\n"),
    )
    .unwrap();
    let mut c = String::from("ean,participant_id,cable_id,installation_id,installation_url\n");
    let mut f =
        String::from("cable_id,kind,node,from_node,length_m,cable_type,ean,phase,inverter_phase\n");
    for i in 0..n {
        let inst = if installed.contains(&i) {
            format!("inst-{i},http://127.0.0.1:9/inst-{i}")
        } else {
            ",".into()
        };
        c += &format!("{},P{i:03},K1,{inst}\n", ean(i));
        let from = if i == 0 {
            "transformer".to_string()
        } else {
            format!("n{i}")
        };
        f += &format!("K1,segment,n{},{from},{spacing_m},NAYY 4x50,,,\n", i + 1);
    }
    for i in 0..n {
        f += &format!("K1,connection,n{},,,,{},{phase},\n", i + 1, ean(i));
    }
    std::fs::write(dir.join("registry/connections.csv"), c).unwrap();
    std::fs::write(dir.join("registry/feeders.csv"), f).unwrap();
    std::fs::write(
        dir.join("vaten.toml"),
        "lake = \"lake\"\nregistry = \"registry\"\n[grid]\nbase_url = \"http://127.0.0.1:9\"\n",
    )
    .unwrap();
}

fn simulate(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vaten"))
        .arg("--config")
        .arg(dir.join("vaten.toml"))
        .args(["simulate", "--cable", "K1", "--out"])
        .arg(dir.join("out"))
        .args(args)
        .env_remove("VATEN_CONFIG")
        .output()
        .unwrap()
}

#[test]
fn a_feeder_that_is_not_radial_is_refused_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    registry(dir.path(), 4, &[], 226.0, 30.0, "L1");
    let feeders = dir.path().join("registry/feeders.csv");
    let good = std::fs::read_to_string(&feeders).unwrap();
    let shown = feeders.display().to_string();
    // Lines: 1 header, 2–5 segments n1..n4, 6–9 connections.
    let cases: [(&str, String, String); 5] = [
        (
            "a loop that never reaches the transformer",
            good.replace("K1,segment,n1,transformer,", "K1,segment,n1,n4,"),
            format!("{shown}:2: node `n1` lies on a loop that never reaches the transformer"),
        ),
        (
            "a loop",
            good.clone() + "K1,segment,n1,n4,30,NAYY 4x50,,,\n",
            format!("{shown}:10: node `n1` is fed a second time (first on line 2)"),
        ),
        (
            "a dangling node",
            good.replace("K1,segment,n3,n2,", "K1,segment,n3,n9,"),
            format!("{shown}:4: node `n3` dangles: `n9` is fed by no segment"),
        ),
        (
            "an unknown cable type",
            good.replace(
                "K1,segment,n2,n1,30,NAYY 4x50",
                "K1,segment,n2,n1,30,NAYY 4x70",
            ),
            format!("{shown}:3: unknown cable_type `NAYY 4x70`"),
        ),
        (
            "a connection on no node",
            good.replace(
                &format!("K1,connection,n4,,,,{}", ean(3)),
                &format!("K1,connection,n7,,,,{}", ean(3)),
            ),
            format!(
                "{shown}:9: connection {} hangs on node `n7`, which no segment of cable K1 feeds",
                ean(3)
            ),
        ),
    ];
    for (what, text, expected) in cases {
        assert_ne!(text, good, "{what}: the case changes the file");
        std::fs::write(&feeders, &text).unwrap();
        let out = simulate(dir.path(), &["--days", "1"]);
        assert_eq!(out.status.code(), Some(2), "{what}: {}", stderr(&out));
        assert!(stderr(&out).contains(&expected), "{what}: {}", stderr(&out));
    }
    // The good file simulates; a step that would never close a quarter-hour is refused.
    std::fs::write(&feeders, &good).unwrap();
    assert_ok(&simulate(dir.path(), &["--days", "1"]));
    for step in ["NaN", "0.0001", "7"] {
        let out = simulate(dir.path(), &["--days", "1", "--step-s", step]);
        assert_eq!(
            out.status.code(),
            Some(2),
            "--step-s {step}: {}",
            stderr(&out)
        );
    }
}

/// Rows of `rank-positions.csv`: (node, distance, ean, fewer quarter-hours beyond).
fn ranking(dir: &Path) -> Vec<(String, f64, String, i64)> {
    let text = std::fs::read_to_string(dir.join("out/rank-positions.csv")).unwrap();
    text.lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (
                f[1].to_string(),
                f[2].parse().unwrap(),
                f[3].to_string(),
                f[6].parse().unwrap(),
            )
        })
        .collect()
}

/// "¼ h beyond band" of the `controllers` row of `simulate.md`.
fn beyond_with_controllers(dir: &Path) -> i64 {
    let md = std::fs::read_to_string(dir.join("out/simulate.md")).unwrap();
    let row = md
        .lines()
        .find(|l| l.starts_with("| controllers "))
        .unwrap_or_else(|| panic!("{md}"));
    row.split('|').nth(5).unwrap().trim().parse().unwrap()
}

#[test]
fn the_far_end_ranks_first_and_the_top_position_delivers_what_was_reported() {
    // 16 three-phase houses on 800 m of NAYY 4x50 over three January days: the evening peaks
    // pull the far end below 237 V, the head stays above it. One installation at n2.
    let dir = tempfile::tempdir().unwrap();
    registry(dir.path(), 16, &[1], 237.0, 50.0, "3");
    let period = ["--from", "2026-01-12", "--to", "2026-01-14"];
    let mut args = vec!["--rank-positions"];
    args.extend(period);
    let out = simulate(dir.path(), &args);
    assert_ok(&out);
    let ranked = ranking(dir.path());
    assert_eq!(ranked.len(), 15, "every node but the installed n2");
    assert!(!ranked.iter().any(|r| r.0 == "n2"));
    let (top_node, top_m, top_ean, top_fewer) = ranked[0].clone();
    assert!(top_fewer > 0, "{ranked:?}");
    // Far-end nodes first: the first three are in the far half, the head node (n1) helps
    // least of all.
    for r in &ranked[..3] {
        assert!(r.1 > 400.0, "{ranked:?}");
    }
    assert_eq!(ranked.last().unwrap().0, "n1", "{ranked:?}");
    let svg = std::fs::read_to_string(dir.path().join("out/rank-positions.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains(&format!(">{top_node}<")));

    // The registry before and after building the top-ranked installation.
    assert_ok(&simulate(dir.path(), &period));
    let before = beyond_with_controllers(dir.path());
    let connections = dir.path().join("registry/connections.csv");
    let text = std::fs::read_to_string(&connections).unwrap();
    let built: String = text
        .lines()
        .map(|l| {
            if l.starts_with(&top_ean) {
                l.replace(",K1,,", ",K1,inst-new,http://127.0.0.1:9/inst-new")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n";
    assert_ne!(built, text);
    std::fs::write(&connections, built).unwrap();
    assert_ok(&simulate(dir.path(), &period));
    let after = beyond_with_controllers(dir.path());
    // The same deterministic simulation: exactly what was reported.
    assert_eq!(
        before - after,
        top_fewer,
        "{top_node} at {top_m} m: reported {top_fewer} fewer, got {before} → {after}"
    );
}

/// A 30-house feeder with a side branch: n1..n20 along the street 30 m apart (NAYY 4x150
/// for the first 10, 4x95 after), n21..n30 a side street of NAYY 4x50 from n8.
fn thirty_houses(dir: &Path) {
    std::fs::create_dir_all(dir.join("registry")).unwrap();
    std::fs::write(
        dir.join("registry/cables.csv"),
        "cable_id,substation,v_low_v,v_high_v\nK1,TS,226,244\n",
    )
    .unwrap();
    let mut c = String::from("ean,participant_id,cable_id\n");
    let mut f =
        String::from("cable_id,kind,node,from_node,length_m,cable_type,ean,phase,inverter_phase\n");
    for i in 1..=30 {
        let (from, kind) = match i {
            1 => ("transformer".to_string(), "NAYY 4x150"),
            2..=10 => (format!("n{}", i - 1), "NAYY 4x150"),
            11..=20 => (format!("n{}", i - 1), "NAYY 4x95"),
            21 => ("n8".to_string(), "NAYY 4x50"),
            _ => (format!("n{}", i - 1), "NAYY 4x50"),
        };
        f += &format!("K1,segment,n{i},{from},30,{kind},,,\n");
    }
    for i in 0..30 {
        // Single-phase houses on the three phases in turn, every fifth three-phase.
        let phase = if i % 5 == 4 {
            "3".to_string()
        } else {
            format!("L{}", i % 3 + 1)
        };
        c += &format!("{},P{i:03},K1\n", ean(i));
        f += &format!("K1,connection,n{},,,,{},{phase},\n", i + 1, ean(i));
    }
    std::fs::write(dir.join("registry/connections.csv"), c).unwrap();
    std::fs::write(dir.join("registry/feeders.csv"), f).unwrap();
}

/// vaten's voltages and power-grid-model's for the same feeder and loads, with the neutral
/// modelled as `neutral` in both; returns whether the far end went above 250 V.
fn agree_with_power_grid_model(neutral: Neutral, mode: &str) -> bool {
    let dir = tempfile::tempdir().unwrap();
    thirty_houses(dir.path());
    let reg_dir = dir.path().join("registry");
    let registry = Registry::load(&reg_dir).unwrap();
    let topo = load(&reg_dir, &registry)
        .unwrap()
        .unwrap()
        .remove("K1")
        .unwrap();
    assert!(topo.placements.iter().any(|p| p.phases == Phases::Three));
    let source_v = 240.0;
    let network = Network::of(&topo, source_v, neutral);
    // Ten instants: evening peaks with unbalance, a quiet night, and noon with panels
    // feeding back (instant 9: 7 kW on every roof, the far ends go above 250 V).
    let mut loads = String::from("instant,node,p_l1_w,p_l2_w,p_l3_w\n");
    let mut ours = Vec::new();
    for t in 0..10 {
        let mut draw = vec![[0.0; 3]; topo.nodes.len()];
        for (k, p) in topo.placements.iter().enumerate() {
            let w = match t {
                9 => -7_000.0,
                6..=8 => -2_500.0 + 300.0 * ((k * 7 + t) % 5) as f64,
                3..=5 => 150.0 + 40.0 * ((k + t) % 4) as f64,
                _ => 1_200.0 + 900.0 * ((k * 3 + t) % 7) as f64,
            };
            let phases = p.phases.spread(w);
            loads += &format!(
                "{t},{},{},{},{}\n",
                topo.nodes[p.node].id, phases[0], phases[1], phases[2]
            );
            for q in 0..3 {
                draw[p.node][q] += phases[q];
            }
        }
        ours.push(
            network
                .solve(&draw)
                .expect("the feeder carries these loads"),
        );
    }
    let loads_path = dir.path().join("loads.csv");
    std::fs::write(&loads_path, loads).unwrap();
    let out = Command::new(crate::tools::python())
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/check_power_grid_model.py"
        ))
        .arg(reg_dir.join("feeders.csv"))
        .arg("K1")
        .arg(&loads_path)
        .arg(source_v.to_string())
        .arg(mode)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let mut compared = 0;
    let mut above_250 = false;
    let mut spread: f64 = 0.0;
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        if f[1] == "transformer" {
            continue;
        }
        let t: usize = f[0].parse().unwrap();
        let node = topo.nodes.iter().position(|n| n.id == f[1]).unwrap();
        for q in 0..3 {
            let theirs: f64 = f[2 + q].parse().unwrap();
            let mine = ours[t][node][q];
            assert!(
                (mine - theirs).abs() < 0.1,
                "{mode}: instant {t} {} L{}: vaten {mine:.3} V, power-grid-model {theirs:.3} V",
                f[1],
                q + 1
            );
            above_250 |= t == 9 && mine > 250.0;
            spread = spread.max((mine - source_v).abs());
            compared += 1;
        }
    }
    assert_eq!(compared, 10 * 30 * 3);
    // The loads move the voltages by volts, so agreement to a tenth means something.
    assert!(spread > 5.0, "{mode}: largest deviation {spread} V");
    above_250
}

#[test]
fn the_solver_agrees_with_power_grid_model_within_a_tenth_of_a_volt() {
    // The neutral at earth everywhere (power-grid-model with Z0 = Z1) and a neutral conductor
    // earthed at the transformer (Z0 = 4 Z1: what the simulation runs).
    assert!(agree_with_power_grid_model(Neutral::Earthed, "earthed"));
    assert!(agree_with_power_grid_model(Neutral::Conductor, "conductor"));
}
