//! A household: its load, its panels, its battery driven by the real firmware controller, and
//! the registers its meters keep.
//!
//! Energy is kept in integer Wh as meters do: each step's load, production, charge and
//! discharge are whole Wh (the cumulative mWh floored, so nothing is lost to rounding), the
//! grid meter sees their net (import or export), and the battery stores `charge · η` and
//! gives `discharge / η` from its store. Per household, by construction and to the Wh:
//! P + L − T = load + charge − discharge = load + losses + Δstored.

use vaten_firmware::controller::{ControllerConfig, ControllerState, Inputs};

/// Cumulative energy of one flow: the mWh total and the whole Wh it has made so far.
#[derive(Debug, Clone, Copy, Default)]
struct Flow {
    mwh: i64,
}

impl Flow {
    /// Adds `w` for `dt_s` and returns the whole Wh this step adds to the register.
    fn add(&mut self, w: f64, dt_s: f64) -> i64 {
        let before = self.mwh.div_euclid(1000);
        self.mwh += (w.max(0.0) * dt_s / 3.6).round() as i64;
        self.mwh.div_euclid(1000) - before
    }
}

#[derive(Debug, Clone)]
pub struct Battery {
    pub config: ControllerConfig,
    pub state: ControllerState,
    /// One-way efficiency (charging and discharging each lose this share's complement).
    pub efficiency: f64,
    /// Energy in the battery, µWh (fine enough that rounding each step's losses costs
    /// nothing measurable).
    pub stored_uwh: i64,
}

impl Battery {
    pub fn soc_pct(&self) -> f32 {
        (self.stored_uwh as f64 / 1e6 / f64::from(self.config.battery.capacity_wh) * 100.0) as f32
    }
}

/// The registers of one household, whole Wh since the start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Registers {
    /// L: delivered by the grid (the smart meter's import).
    pub import_wh: i64,
    /// T: fed back (the smart meter's export).
    pub export_wh: i64,
    /// P: the installation's production meter.
    pub pv_wh: i64,
    pub charge_wh: i64,
    pub discharge_wh: i64,
    /// What the household used.
    pub load_wh: i64,
    /// Energy in the battery, whole Wh.
    pub stored_wh: i64,
    /// Production of panels outside the cooperative's installation (no P meter).
    pub unmetered_pv_wh: i64,
}

#[derive(Debug, Clone)]
pub struct House {
    pub kwh_year: f64,
    pub pv_kwp: f64,
    pub battery: Option<Battery>,
    /// Whether the installation (production meter, battery, controller) exists at all.
    pub installation: bool,
    pub regs: Registers,
    flows: [Flow; 4],
    stored_start_wh: i64,
}

/// What one step did at one house.
#[derive(Debug, Clone, Copy, Default)]
pub struct StepResult {
    /// Battery power, W (positive charges).
    pub setpoint_w: f64,
}

impl House {
    pub fn new(kwh_year: f64, pv_kwp: f64, battery: Option<Battery>) -> Self {
        let installation = battery.is_some();
        let stored = battery
            .as_ref()
            .map_or(0, |b| b.stored_uwh.div_euclid(1_000_000));
        House {
            kwh_year,
            pv_kwp,
            battery,
            installation,
            regs: Registers {
                stored_wh: stored,
                ..Default::default()
            },
            flows: [Flow::default(); 4],
            stored_start_wh: stored,
        }
    }

    /// The battery power the controller wants now (W), given the voltage at the house.
    pub fn control(&mut self, dt_s: f64, voltage_v: f64, load_w: f64, pv_w: f64) -> f64 {
        match &mut self.battery {
            Some(b) => {
                let soc = b.soc_pct();
                let out = b.config.step(
                    &mut b.state,
                    &Inputs {
                        dt_s: dt_s as f32,
                        voltage_v: voltage_v as f32,
                        pv_w: pv_w as f32,
                        load_w: load_w as f32,
                        soc_pct: soc,
                    },
                );
                f64::from(out.setpoint_w)
            }
            None => 0.0,
        }
    }

    /// Books one step of `dt_s` with the battery at `battery_w` (positive charges).
    pub fn book(&mut self, dt_s: f64, load_w: f64, pv_w: f64, battery_w: f64) {
        let load = self.flows[0].add(load_w, dt_s);
        let pv = self.flows[1].add(pv_w, dt_s);
        let (mut charge, mut discharge) = (0, 0);
        if let Some(b) = &mut self.battery {
            charge = self.flows[2].add(battery_w, dt_s);
            discharge = self.flows[3].add(-battery_w, dt_s);
            let into = (charge as f64 * 1e6 * b.efficiency).round() as i64;
            let out_of = (discharge as f64 * 1e6 / b.efficiency).round() as i64;
            b.stored_uwh += into - out_of;
            self.regs.stored_wh = b.stored_uwh.div_euclid(1_000_000);
        }
        let net = load + charge - discharge - pv;
        if net >= 0 {
            self.regs.import_wh += net;
        } else {
            self.regs.export_wh += -net;
        }
        // Panels of a house without installation are not metered: only their export shows.
        if self.installation {
            self.regs.pv_wh += pv;
        } else {
            self.regs.unmetered_pv_wh += pv;
        }
        self.regs.charge_wh += charge;
        self.regs.discharge_wh += discharge;
        self.regs.load_wh += load;
    }

    /// Battery losses so far (Wh): what went in minus what came out minus what is still in.
    pub fn losses_wh(&self) -> i64 {
        self.regs.charge_wh - self.regs.discharge_wh - (self.regs.stored_wh - self.stored_start_wh)
    }

    pub fn stored_change_wh(&self) -> i64 {
        self.regs.stored_wh - self.stored_start_wh
    }
}
