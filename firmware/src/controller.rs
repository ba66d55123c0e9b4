//! The voltage-responsive charger controller.
//!
//! Sign convention: the setpoint is the battery's power in W, **positive when the battery
//! charges**, negative when it discharges (feeds the house and, beyond that, the grid).
//!
//! The target is continuous in the voltage, so that many controllers on one cable that all see
//! the same voltage never switch together at a threshold:
//! - inside `[v_low_v, v_high_v]`: self-consumption, `target = pv − load` (store the surplus,
//!   cover the deficit), within the battery's limits;
//! - below `v_low_v`: additionally feed back `f · max_discharge_w`, where `f` rises linearly
//!   from 0 at `v_low_v` to 1 at `v_low_v − droop_width_v` (the piecewise-linear droop);
//! - above `v_high_v`: additionally charge from the grid `g · max_charge_w` along the mirrored
//!   droop (see [`ControllerConfig::pv_priority`] for how local production counts).
//!
//! The setpoint follows the target through a first-order lag with time constant `tau_s`
//! (discretised as backward Euler, `α = dt / (tau + dt)`, stable for any `dt`; no `exp` needed
//! in `no_std`) and a ramp limit. The state-of-charge window is never crossed: the setpoint is
//! limited to what the remaining energy allows within `dt`.

/// Limits agreed with the grid operator for one street cable.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CableConfig {
    /// Below this, the installations feed back.
    pub v_low_v: f32,
    /// Above this, the installations charge from the grid.
    pub v_high_v: f32,
    /// Width of the droop below `v_low_v` over which feed-back rises to the maximum.
    pub feed_droop_v: f32,
    /// Width of the droop above `v_high_v` over which grid charging rises to the maximum.
    pub charge_droop_v: f32,
}

/// The battery behind the meter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatteryConfig {
    pub capacity_wh: f32,
    pub max_charge_w: f32,
    pub max_discharge_w: f32,
    /// The state-of-charge window the controller keeps to.
    pub soc_min_pct: f32,
    pub soc_max_pct: f32,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ControllerConfig {
    pub cable: CableConfig,
    pub battery: BatteryConfig,
    /// When charging at high voltage: with `true`, local PV surplus counts toward the charging
    /// power the droop asks for (the battery fills from the panels first and draws from the
    /// grid only what the surplus does not cover); with `false`, the droop's charging power is
    /// drawn from the grid on top of the PV surplus (more help for the cable, less room for
    /// own production).
    pub pv_priority: bool,
    /// Time constant of the first-order response.
    pub tau_s: f32,
    /// Largest change of the setpoint per second.
    pub ramp_w_per_s: f32,
}

/// Which region of the voltage characteristic the controller is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Voltage inside the band: the battery serves the household only.
    SelfConsumption,
    /// Voltage below `v_low_v`: feeding back.
    FeedBack,
    /// Voltage above `v_high_v`: charging from the grid.
    ChargeFromGrid,
}

/// What the controller remembers between steps.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ControllerState {
    pub setpoint_w: f32,
}

/// One step's measurements.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Inputs {
    pub dt_s: f32,
    pub voltage_v: f32,
    pub pv_w: f32,
    pub load_w: f32,
    pub soc_pct: f32,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Output {
    /// Battery power: positive charges, negative discharges.
    pub setpoint_w: f32,
    pub mode: Mode,
    /// True when the state-of-charge window cut the setpoint this step.
    pub soc_limited: bool,
}

fn clamp(x: f32, lo: f32, hi: f32) -> f32 {
    // Not f32::clamp: it panics when lo > hi, and a NaN input must not pass through.
    if x.is_nan() {
        return 0.0;
    }
    if x < lo {
        lo
    } else if x > hi {
        hi
    } else {
        x
    }
}

/// Fraction 0..=1 of the droop at `excess_v` volts past the band edge over `width_v`.
fn droop(excess_v: f32, width_v: f32) -> f32 {
    if width_v <= 0.0 {
        return if excess_v > 0.0 { 1.0 } else { 0.0 };
    }
    clamp(excess_v / width_v, 0.0, 1.0)
}

impl ControllerConfig {
    /// The setpoint the controller steers toward, before dynamics and the SoC window.
    pub fn target_w(&self, voltage_v: f32, pv_w: f32, load_w: f32) -> (f32, Mode) {
        let b = &self.battery;
        let c = &self.cable;
        let surplus_w = pv_w - load_w;
        let own_w = clamp(surplus_w, -b.max_discharge_w, b.max_charge_w);
        if voltage_v < c.v_low_v {
            let f = droop(c.v_low_v - voltage_v, c.feed_droop_v);
            (own_w - f * b.max_discharge_w, Mode::FeedBack)
        } else if voltage_v > c.v_high_v {
            let demand_w = droop(voltage_v - c.v_high_v, c.charge_droop_v) * b.max_charge_w;
            let from_grid_w = if self.pv_priority {
                // Own PV surplus first; the grid supplies what it leaves of the demand.
                let pv_surplus_w = if surplus_w > 0.0 { surplus_w } else { 0.0 };
                let rest = demand_w - pv_surplus_w;
                if rest > 0.0 {
                    rest
                } else {
                    0.0
                }
            } else {
                demand_w
            };
            (own_w + from_grid_w, Mode::ChargeFromGrid)
        } else {
            (own_w, Mode::SelfConsumption)
        }
    }

    /// One control step: moves the setpoint toward the target and keeps every limit.
    pub fn step(&self, state: &mut ControllerState, x: &Inputs) -> Output {
        let b = &self.battery;
        let dt_s = if x.dt_s.is_finite() && x.dt_s > 0.0 {
            x.dt_s
        } else {
            0.0
        };
        let (target_w, mode) = if x.voltage_v.is_finite() {
            self.target_w(
                x.voltage_v,
                finite_or_zero(x.pv_w),
                finite_or_zero(x.load_w),
            )
        } else {
            // No voltage reading: serve the household only.
            let own = clamp(
                finite_or_zero(x.pv_w) - finite_or_zero(x.load_w),
                -b.max_discharge_w,
                b.max_charge_w,
            );
            (own, Mode::SelfConsumption)
        };
        let target_w = clamp(target_w, -b.max_discharge_w, b.max_charge_w);
        let alpha = if self.tau_s > 0.0 {
            dt_s / (self.tau_s + dt_s)
        } else {
            1.0
        };
        let prev = finite_or_zero(state.setpoint_w);
        let mut delta = (target_w - prev) * alpha;
        let max_delta = self.ramp_w_per_s * dt_s;
        if self.ramp_w_per_s > 0.0 {
            delta = clamp(delta, -max_delta, max_delta);
        }
        let mut setpoint_w = clamp(prev + delta, -b.max_discharge_w, b.max_charge_w);
        // The SoC window: no more energy than the window has left within this step.
        let soc = finite_or_zero(x.soc_pct);
        let (room_up_w, room_down_w) = if dt_s > 0.0 {
            let per_pct_wh = b.capacity_wh / 100.0;
            let hours = dt_s / 3600.0;
            (
                nonneg((b.soc_max_pct - soc) * per_pct_wh / hours),
                nonneg((soc - b.soc_min_pct) * per_pct_wh / hours),
            )
        } else {
            (0.0, 0.0)
        };
        let unlimited = setpoint_w;
        setpoint_w = clamp(setpoint_w, -room_down_w, room_up_w);
        let soc_limited = setpoint_w != unlimited;
        state.setpoint_w = setpoint_w;
        Output {
            setpoint_w,
            mode,
            soc_limited,
        }
    }
}

fn finite_or_zero(x: f32) -> f32 {
    if x.is_finite() {
        x
    } else {
        0.0
    }
}

fn nonneg(x: f32) -> f32 {
    if x > 0.0 {
        x
    } else {
        0.0
    }
}
