//! One cable of the registry as a simulation scenario: its connections, who has an
//! installation, and where each hangs on the feeder (`feeders.csv`; without it, a straight
//! cable with a house every 25 m, single-phase on the phases in turn).
//!
//! What the registry does not say is filled in the same way for every run, so that runs
//! differ only in what is asked: a household's yearly consumption comes from its EAN and the
//! seed (2,200–4,800 kWh under the H25 profile); an installation has the typical battery and
//! panels given on the command line (the registry's `production_capacity_w` is a limit, not
//! the panels' size); connections without an installation have no panels.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::weather::unit;
use super::{CableSpec, HouseSpec, Scenario, SOURCE_V};
use crate::error::{Error, Result};
use crate::feeders::{Phases, Placement, Topology};
use crate::registry::Registry;

/// The installation the cooperative typically places.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Typical {
    pub battery_wh: f64,
    pub panels_w: f64,
}

/// A stable number per EAN (FNV-1a of its digits).
fn ean_key(ean: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in ean.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The scenario of cable `cable_id` of `registry`, laid as `topologies` says when it has it.
#[allow(clippy::too_many_arguments)]
pub fn scenario(
    registry: &Registry,
    topologies: Option<&BTreeMap<String, Topology>>,
    cable_id: &str,
    start: DateTime<Utc>,
    step_s: f64,
    seed: u64,
    typical: Typical,
) -> Result<Scenario> {
    let Some(cable) = registry.cables.get(cable_id) else {
        return Err(Error::Usage(format!(
            "--cable {cable_id}: not in the registry's cables.csv (known: {})",
            registry
                .cables
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        )));
    };
    let connections: Vec<_> = registry
        .connections
        .iter()
        .filter(|c| c.cable_id == cable_id)
        .collect();
    if connections.is_empty() {
        return Err(Error::Usage(format!(
            "--cable {cable_id}: no connection of the registry is on it"
        )));
    }
    let topology = match topologies.and_then(|t| t.get(cable_id)) {
        Some(t) => t.clone(),
        None => {
            let mut t = Topology::line(cable_id, connections.len(), 25.0);
            t.placements = connections
                .iter()
                .enumerate()
                .map(|(k, c)| Placement {
                    ean: c.ean.to_string(),
                    node: k,
                    phases: Phases::One(k % 3),
                    inverter: Phases::One(k % 3),
                })
                .collect();
            t
        }
    };
    let placed: std::collections::HashMap<&str, &Placement> = topology
        .placements
        .iter()
        .map(|p| (p.ean.as_str(), p))
        .collect();
    let houses = connections
        .iter()
        .map(|c| {
            let Some(place) = placed.get(c.ean.as_str()) else {
                return Err(Error::Usage(format!(
                    "feeders.csv: connection {} of cable {cable_id} hangs on no node",
                    c.ean
                )));
            };
            let installed = c.installation.is_some();
            Ok(HouseSpec {
                ean: c.ean.to_string(),
                cable: 0,
                node: place.node,
                phases: place.phases,
                inverter: place.inverter,
                kwh_year: 2200.0 + 2600.0 * unit(seed, ean_key(c.ean.as_str())),
                pv_kwp: if installed {
                    typical.panels_w / 1000.0
                } else {
                    0.0
                },
                battery_wh: installed.then_some(typical.battery_wh),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let cable = CableSpec {
        cable_id: cable_id.to_string(),
        v_source_v: SOURCE_V,
        v_low_v: cable.v_low_v,
        v_high_v: cable.v_high_v,
        topology,
    };
    Ok(Scenario::new(vec![cable], houses, start, step_s, seed))
}
