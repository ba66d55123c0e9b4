//! A street-cable simulation driving the real firmware controller: households with the BDEW
//! H25 load, panels under a clear-sky model with clouds, batteries whose setpoints come from
//! `vaten-firmware`'s controller given the voltage the feeder model computes at each house.
//!
//! Each step (default 60 s): loads and production; the node voltages of every phase of every
//! cable, with the neutral, from what each house drew in the step before (`network`); every controller's setpoint
//! from its voltage; the energies booked into the meters' registers (`household`). At each
//! quarter-hour end the registers and the quarter's voltage statistics are handed out: the
//! same readings the grid operator and the installations deliver. Deterministic for a seed.

pub mod cable;
pub mod compare;
pub mod household;
pub mod network;
pub mod rank;
pub mod weather;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use vaten_firmware::controller::{BatteryConfig, CableConfig, ControllerConfig, ControllerState};
use vaten_firmware::readings::{VoltageAggregator, VoltageStats};

use crate::feeders::{Phases, Topology};
use household::{Battery, House, Registers};
use network::{Network, Neutral};
use weather::{cloud_factor, h25_w, pv_w, unit};

/// One street cable.
#[derive(Debug, Clone)]
pub struct CableSpec {
    pub cable_id: String,
    /// The transformer's voltage at the cable's start.
    pub v_source_v: f64,
    /// Limits agreed with the grid operator.
    pub v_low_v: f64,
    pub v_high_v: f64,
    /// The feeder: nodes and segments (`feeders.csv`, or a straight cable).
    pub topology: Topology,
}

#[derive(Debug, Clone)]
pub struct HouseSpec {
    pub ean: String,
    pub cable: usize,
    /// Index of its node in the cable's topology.
    pub node: usize,
    /// The connection's phases (its consumption) and the inverter's (production, battery).
    pub phases: Phases,
    pub inverter: Phases,
    pub kwh_year: f64,
    /// Panels (with or without the cooperative's installation).
    pub pv_kwp: f64,
    /// The cooperative's installation: battery capacity in Wh (`None`: no installation).
    pub battery_wh: Option<f64>,
}

/// The transformer's voltage at a cable's start (a distribution transformer's tap set a
/// little above 230 V).
pub const SOURCE_V: f64 = 240.0;

impl Scenario {
    /// The cables and houses with controllers on, `pv_priority` on, in Dutch time.
    pub fn new(
        cables: Vec<CableSpec>,
        houses: Vec<HouseSpec>,
        start: DateTime<Utc>,
        step_s: f64,
        seed: u64,
    ) -> Self {
        Scenario {
            cables,
            houses,
            start,
            step_s,
            seed,
            controllers: true,
            pv_priority: true,
            tz: crate::domain::time::AMSTERDAM,
        }
    }
}

/// A simulated cooperative and how to run it.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub cables: Vec<CableSpec>,
    pub houses: Vec<HouseSpec>,
    pub start: DateTime<Utc>,
    pub step_s: f64,
    pub seed: u64,
    /// `false`: the batteries stay idle (the baseline without controllers).
    pub controllers: bool,
    pub pv_priority: bool,
    pub tz: Tz,
}

/// Per cable, what the voltage-limit talks need.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CableStats {
    pub quarters: u64,
    /// Quarter-hours in which some house's mean voltage was above `v_high_v` / below `v_low_v`.
    pub quarters_above_band: u64,
    pub quarters_below_band: u64,
    /// Quarter-hours in which some house's mean voltage (on any phase of its connection) was
    /// beyond either limit, or a power flow of the cable had no solution.
    pub quarters_beyond_band: u64,
    /// Quarter-hours in which some house's mean voltage was outside EN 50160's 230 V ± 10 %.
    pub quarters_outside_en50160: u64,
    /// Σ over quarter-hours of min(Σ L, Σ T) of the cable's houses.
    pub matched_wh: i64,
    pub import_wh: i64,
    pub export_wh: i64,
    /// Largest power drawn from / fed into the transformer, W.
    pub peak_import_w: f64,
    pub peak_export_w: f64,
    /// Energy through the batteries (charge + discharge), Wh.
    pub battery_throughput_wh: i64,
    /// Steps at which a controller's setpoint reversed the direction of the step before
    /// (both moves over 50 W): the target moved back, or the controller overshot.
    pub setpoint_reversals: u64,
    /// Steps ending the third or later reversal in a row: the setpoint zig-zagging step after
    /// step, which is what an oscillation looks like.
    pub oscillating_steps: u64,
    pub controller_steps: u64,
    /// Power-flow solves of the cable and the time they took (for the benchmarks).
    pub solves: u64,
    pub solve_ns: u64,
    /// Power flows without a solution (the cable cannot carry the load), and the
    /// quarter-hours with one: those count as beyond the limits.
    pub unsolved_flows: u64,
    pub quarters_unsolved: u64,
}

/// One house's readings at a quarter-hour's end.
#[derive(Debug, Clone, Copy)]
pub struct QuarterReading {
    pub house: usize,
    pub t_end: DateTime<Utc>,
    pub regs: Registers,
    pub voltage: Option<VoltageStats>,
    pub soc_pct: Option<f32>,
}

/// The controller's settings for a cable.
pub fn controller_config(
    cable: &CableSpec,
    capacity_wh: f64,
    pv_priority: bool,
) -> ControllerConfig {
    ControllerConfig {
        cable: CableConfig {
            v_low_v: cable.v_low_v as f32,
            v_high_v: cable.v_high_v as f32,
            feed_droop_v: 4.0,
            charge_droop_v: 4.0,
        },
        battery: BatteryConfig {
            capacity_wh: capacity_wh as f32,
            max_charge_w: 3000.0,
            max_discharge_w: 3000.0,
            soc_min_pct: 10.0,
            soc_max_pct: 95.0,
        },
        pv_priority,
        tau_s: 30.0,
        ramp_w_per_s: 100.0,
    }
}

pub struct Simulation {
    pub scenario: Scenario,
    pub houses: Vec<House>,
    /// Per cable: the feeder's electrical model and the houses on it.
    networks: Vec<(Network, Vec<usize>)>,
    voltage_v: Vec<f64>,
    setpoint_w: Vec<f64>,
    last_delta_w: Vec<f64>,
    reversal_run: Vec<u32>,
    aggregators: Vec<VoltageAggregator>,
    at_quarter_start: Vec<Registers>,
    /// Per house, the sums of its node's three phase voltages over the quarter-hour so far.
    quarter_v_sum: Vec<([f64; 3], u32)>,
    /// The last voltages of every house's node, per phase.
    phase_v: Vec<[f64; 3]>,
    /// Per cable: whether a power flow found no solution this quarter-hour.
    unsolved: Vec<bool>,
    pub stats: Vec<CableStats>,
    pub now: DateTime<Utc>,
}

const QUARTER_S: i64 = 900;

/// The longest control step: voltages and setpoints are recomputed at least this often.
pub const CONTROL_STEP_S: f64 = 10.0;

impl Simulation {
    pub fn new(scenario: Scenario) -> Self {
        let houses: Vec<House> = scenario
            .houses
            .iter()
            .map(|h| {
                let battery = h.battery_wh.map(|cap| Battery {
                    config: controller_config(&scenario.cables[h.cable], cap, scenario.pv_priority),
                    state: ControllerState::default(),
                    efficiency: 0.95,
                    stored_uwh: (cap * 0.5 * 1e6) as i64,
                });
                House::new(h.kwh_year, h.pv_kwp, battery)
            })
            .collect();
        let networks = scenario
            .cables
            .iter()
            .enumerate()
            .map(|(c, cable)| {
                let members = (0..scenario.houses.len())
                    .filter(|&i| scenario.houses[i].cable == c)
                    .collect();
                (
                    Network::of(&cable.topology, cable.v_source_v, Neutral::Conductor),
                    members,
                )
            })
            .collect();
        let n = houses.len();
        Simulation {
            voltage_v: vec![230.0; n],
            setpoint_w: vec![0.0; n],
            last_delta_w: vec![0.0; n],
            reversal_run: vec![0; n],
            aggregators: vec![VoltageAggregator::default(); n],
            at_quarter_start: houses.iter().map(|h| h.regs).collect(),
            quarter_v_sum: vec![([0.0; 3], 0); n],
            phase_v: vec![[230.0; 3]; n],
            unsolved: vec![false; scenario.cables.len()],
            stats: vec![CableStats::default(); scenario.cables.len()],
            now: scenario.start,
            houses,
            networks,
            scenario,
        }
    }

    fn load_w(&self, i: usize, t: DateTime<Utc>) -> f64 {
        let h = &self.scenario.houses[i];
        // Each household differs from the profile: a factor per quarter-hour, 0.4..1.8.
        let q = t.timestamp().div_euclid(QUARTER_S) as u64;
        let noise = 0.4 + 1.4 * unit(self.scenario.seed ^ ((i as u64 + 1) * 0x51ED), q);
        h25_w(t, self.scenario.tz, h.kwh_year) * noise
    }

    fn pv_w(&self, i: usize, t: DateTime<Utc>) -> f64 {
        let h = &self.scenario.houses[i];
        if h.pv_kwp <= 0.0 {
            return 0.0;
        }
        // The street shares the weather; each roof differs a little.
        let cloud =
            cloud_factor(self.scenario.seed, t) * (0.9 + 0.1 * unit(self.scenario.seed, i as u64));
        pv_w(t, h.pv_kwp, cloud)
    }

    /// Runs until `end`, handing out every house's readings at each quarter-hour end.
    ///
    /// Loads and production change every `step_s`; the controllers and the voltages every
    /// [`CONTROL_STEP_S`] at most (the firmware controls every second: a minute-long control
    /// step would feed each controller's reaction back into the voltage far too late and make
    /// a stable design look unstable).
    pub fn run_until(&mut self, end: DateTime<Utc>, on_quarter: &mut dyn FnMut(&QuarterReading)) {
        let step_s = self.scenario.step_s;
        let subs = (step_s / CONTROL_STEP_S).ceil().max(1.0) as usize;
        let dt = step_s / subs as f64;
        let step = Duration::milliseconds((step_s * 1000.0) as i64);
        while self.now < end {
            let t = self.now;
            let mid = t + step / 2;
            let n = self.houses.len();
            let load: Vec<f64> = (0..n).map(|i| self.load_w(i, mid)).collect();
            let pv: Vec<f64> = (0..n).map(|i| self.pv_w(i, mid)).collect();
            for _ in 0..subs {
                self.sub_step(dt, &load, &pv);
            }
            self.now = t + step;
            if self.now.timestamp().rem_euclid(QUARTER_S) == 0 {
                self.close_quarter(on_quarter);
            }
        }
    }

    fn sub_step(&mut self, dt: f64, load: &[f64], pv: &[f64]) {
        let n = self.houses.len();
        // Voltages from what each house draws with the setpoints in force: its consumption
        // on its connection's phases, production and battery on its inverter's.
        for (c, (network, members)) in self.networks.iter().enumerate() {
            let mut draw = vec![[0.0; 3]; network.segments.len()];
            let mut cable_draw = 0.0;
            for &i in members {
                let h = &self.scenario.houses[i];
                let on_connection = h.phases.spread(load[i]);
                let on_inverter = h.inverter.spread(self.setpoint_w[i] - pv[i]);
                for p in 0..3 {
                    draw[h.node][p] += on_connection[p] + on_inverter[p];
                }
                cable_draw += load[i] - pv[i] + self.setpoint_w[i];
            }
            let timer = std::time::Instant::now();
            let solved = network.solve(&draw);
            self.stats[c].solve_ns += timer.elapsed().as_nanos() as u64;
            self.stats[c].solves += 1;
            match solved {
                Some(volts) => {
                    for &i in members {
                        let h = &self.scenario.houses[i];
                        self.phase_v[i] = volts[h.node];
                        self.voltage_v[i] = volts[h.node][measured_phase(h)];
                    }
                }
                // The cable cannot carry this load: the quarter-hour counts as beyond the
                // limits, and the controllers keep the voltage they saw last.
                None => {
                    self.stats[c].unsolved_flows += 1;
                    self.unsolved[c] = true;
                }
            }
            let s = &mut self.stats[c];
            s.peak_import_w = s.peak_import_w.max(cable_draw);
            s.peak_export_w = s.peak_export_w.max(-cable_draw);
        }
        for i in 0..n {
            let setpoint = if self.scenario.controllers {
                self.houses[i].control(dt, self.voltage_v[i], load[i], pv[i])
            } else {
                0.0
            };
            if self.houses[i].battery.is_some() && self.scenario.controllers {
                let delta = setpoint - self.setpoint_w[i];
                let s = &mut self.stats[self.scenario.houses[i].cable];
                s.controller_steps += 1;
                let prev = self.last_delta_w[i];
                if delta.abs() > 50.0 && prev.abs() > 50.0 && delta.signum() != prev.signum() {
                    s.setpoint_reversals += 1;
                    self.reversal_run[i] += 1;
                    if self.reversal_run[i] >= 3 {
                        s.oscillating_steps += 1;
                    }
                } else {
                    self.reversal_run[i] = 0;
                }
                self.last_delta_w[i] = delta;
            }
            self.setpoint_w[i] = setpoint;
            self.houses[i].book(dt, load[i], pv[i], setpoint);
            self.aggregators[i].add(self.voltage_v[i] as f32);
            for p in 0..3 {
                self.quarter_v_sum[i].0[p] += self.phase_v[i][p];
            }
            self.quarter_v_sum[i].1 += 1;
        }
    }

    fn close_quarter(&mut self, on_quarter: &mut dyn FnMut(&QuarterReading)) {
        let cables = self.scenario.cables.len();
        let (mut l, mut t) = (vec![0i64; cables], vec![0i64; cables]);
        let mut above = vec![false; cables];
        let mut below = vec![false; cables];
        let mut outside = vec![false; cables];
        for i in 0..self.houses.len() {
            let c = self.scenario.houses[i].cable;
            let regs = self.houses[i].regs;
            let prev = self.at_quarter_start[i];
            l[c] += regs.import_wh - prev.import_wh;
            t[c] += regs.export_wh - prev.export_wh;
            self.stats[c].battery_throughput_wh +=
                regs.charge_wh - prev.charge_wh + regs.discharge_wh - prev.discharge_wh;
            let (sums, count) = std::mem::take(&mut self.quarter_v_sum[i]);
            if count > 0 {
                // Every phase the connection has: a three-phase house suffers on its worst.
                let cable = &self.scenario.cables[c];
                let phases = self.scenario.houses[i].phases.spread(1.0);
                for p in (0..3).filter(|&p| phases[p] > 0.0) {
                    let mean = sums[p] / f64::from(count);
                    above[c] |= mean > cable.v_high_v;
                    below[c] |= mean < cable.v_low_v;
                    outside[c] |= !(207.0..=253.0).contains(&mean);
                }
            }
            let voltage = self.aggregators[i].finish();
            on_quarter(&QuarterReading {
                house: i,
                t_end: self.now,
                regs,
                voltage,
                soc_pct: self.houses[i].battery.as_ref().map(|b| b.soc_pct()),
            });
            self.at_quarter_start[i] = regs;
        }
        for c in 0..cables {
            let unsolved = std::mem::take(&mut self.unsolved[c]);
            let s = &mut self.stats[c];
            s.quarters += 1;
            s.quarters_unsolved += u64::from(unsolved);
            s.import_wh += l[c];
            s.export_wh += t[c];
            s.matched_wh += l[c].min(t[c]);
            s.quarters_above_band += u64::from(above[c]);
            s.quarters_below_band += u64::from(below[c]);
            s.quarters_beyond_band += u64::from(above[c] || below[c] || unsolved);
            s.quarters_outside_en50160 += u64::from(outside[c]);
        }
    }
}

/// The phase whose voltage a house's controller and meter see: its inverter's, else its
/// connection's, else L1 (a three-phase meter's first).
pub fn measured_phase(h: &HouseSpec) -> usize {
    match (h.inverter, h.phases) {
        (Phases::One(p), _) | (Phases::Three, Phases::One(p)) => p,
        (Phases::Three, Phases::Three) => 0,
    }
}

/// A cooperative of `n` connections on `cables` cables, `installed` of every 3 with an
/// installation (battery and P meter), houses 25 m apart; EANs as the fake grid operator's.
pub fn cooperative_scenario(
    n: usize,
    cables: usize,
    start: DateTime<Utc>,
    step_s: f64,
    seed: u64,
) -> Scenario {
    let cable_specs: Vec<CableSpec> = (0..cables)
        .map(|c| CableSpec {
            cable_id: format!("K{}", c + 1),
            v_source_v: SOURCE_V,
            v_low_v: 226.0,
            v_high_v: 244.0,
            // A node every 25 m for each house of the cable.
            topology: Topology::line(&format!("K{}", c + 1), n.div_ceil(cables.max(1)), 25.0),
        })
        .collect();
    let houses: Vec<HouseSpec> = (0..n)
        .map(|i| {
            let ean = crate::domain::Ean::with_check_digit(&format!("87168712{i:09}"))
                .expect("17 digits")
                .to_string();
            let cable = i % cables;
            let k = i / cables;
            // Two in three along each cable with an installation (battery, panels, P meter);
            // of the others some have panels of their own.
            let installed = k % 3 != 2;
            let r = unit(seed, i as u64 + 7);
            HouseSpec {
                ean,
                cable,
                node: k,
                // Single-phase houses, on the three phases in turn.
                phases: Phases::One(k % 3),
                inverter: Phases::One(k % 3),
                kwh_year: 2200.0 + 2600.0 * r,
                pv_kwp: if installed {
                    3.0 + 3.0 * unit(seed, i as u64 + 11)
                } else if r < 0.4 {
                    3.5
                } else {
                    0.0
                },
                battery_wh: installed.then_some(10_000.0),
            }
        })
        .collect();
    let mut cable_specs = cable_specs;
    for h in &houses {
        cable_specs[h.cable]
            .topology
            .placements
            .push(crate::feeders::Placement {
                ean: h.ean.clone(),
                node: h.node,
                phases: h.phases,
                inverter: h.inverter,
            });
    }
    Scenario::new(cable_specs, houses, start, step_s, seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn energy_balances_per_house_to_the_wh() {
        let start: DateTime<Utc> = "2026-06-01T00:00:00Z".parse().unwrap();
        let mut sim = Simulation::new(cooperative_scenario(9, 1, start, 60.0, 3));
        sim.run_until(start + Duration::days(3), &mut |_| {});
        for (i, h) in sim.houses.iter().enumerate() {
            let r = h.regs;
            if h.installation {
                // P + L − T = load + battery losses + net change of stored energy.
                assert_eq!(
                    r.pv_wh + r.import_wh - r.export_wh,
                    r.load_wh + h.losses_wh() + h.stored_change_wh(),
                    "house {i}"
                );
                // The losses are the efficiency's: 5 % of what went in, 1/0.95 − 1 of what
                // came out (within the Wh the stored energy is floored to).
                let expected =
                    0.05 * r.charge_wh as f64 + (1.0 / 0.95 - 1.0) * r.discharge_wh as f64;
                assert!(
                    (h.losses_wh() as f64 - expected).abs() <= 1.0,
                    "house {i}: {} vs {expected}",
                    h.losses_wh()
                );
                assert!(r.charge_wh > 1000, "the battery was used: {r:?}");
            } else {
                assert_eq!(
                    r.import_wh - r.export_wh,
                    r.load_wh - r.unmetered_pv_wh,
                    "house {i}"
                );
            }
        }
    }
}
