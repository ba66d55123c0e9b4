//! Controller responses worked out by hand, the SoC window, `pv_priority`, and 30 controllers
//! on one cable settling after a load step.

use crate::controller::*;

fn config(pv_priority: bool) -> ControllerConfig {
    ControllerConfig {
        cable: CableConfig {
            v_low_v: 226.0,
            v_high_v: 244.0,
            feed_droop_v: 4.0,
            charge_droop_v: 4.0,
        },
        battery: BatteryConfig {
            capacity_wh: 10_000.0,
            max_charge_w: 3_000.0,
            max_discharge_w: 3_000.0,
            soc_min_pct: 10.0,
            soc_max_pct: 90.0,
        },
        pv_priority,
        tau_s: 10.0,
        ramp_w_per_s: 1.0e6,
    }
}

fn close(a: f32, b: f32, tol: f32) -> bool {
    (a - b).abs() <= tol
}

#[test]
fn droop_curve_by_hand() {
    let c = config(false);
    // Inside the band: pv − load.
    assert_eq!(
        c.target_w(235.0, 1_000.0, 400.0),
        (600.0, Mode::SelfConsumption)
    );
    // 1 V below v_low over a 4 V droop: a quarter of max discharge on top of own use.
    assert_eq!(
        c.target_w(225.0, 0.0, 400.0),
        (-400.0 - 750.0, Mode::FeedBack)
    );
    // 3 V below: three quarters; beyond the droop: the maximum (clamped in step).
    assert_eq!(c.target_w(223.0, 0.0, 0.0).0, -2_250.0);
    assert_eq!(c.target_w(200.0, 0.0, 0.0).0, -3_000.0);
    // Mirrored above v_high.
    assert_eq!(c.target_w(246.0, 0.0, 0.0), (1_500.0, Mode::ChargeFromGrid));
    assert_eq!(c.target_w(260.0, 0.0, 0.0).0, 3_000.0);
    // Continuous at the band edges: no step for many controllers to switch on together.
    for (v, pv, load) in [(226.0, 500.0, 900.0), (244.0, 800.0, 100.0)] {
        let inside = c.target_w(v, pv, load).0;
        let just_out = c
            .target_w(if v < 230.0 { v - 0.001 } else { v + 0.001 }, pv, load)
            .0;
        assert!(close(inside, just_out, 1.0), "{v}: {inside} vs {just_out}");
    }
}

#[test]
fn step_response_follows_the_time_constant() {
    let c = config(false);
    let mut s = ControllerState::default();
    let dt = 0.01;
    let x = Inputs {
        dt_s: dt,
        voltage_v: 220.0,
        pv_w: 0.0,
        load_w: 0.0,
        soc_pct: 50.0,
    };
    let mut t = 0.0;
    let mut at_tau = 0.0;
    while t < 3.0 * c.tau_s - 1e-3 {
        let out = c.step(&mut s, &x);
        t += dt;
        if (t - c.tau_s).abs() < dt / 2.0 {
            at_tau = out.setpoint_w;
        }
        assert_eq!(out.mode, Mode::FeedBack);
    }
    // First order: 1 − e^(−1) = 63.2 % of the −3000 W step after one time constant,
    // 1 − e^(−3) = 95.0 % after three (backward Euler with dt = τ/1000 is within 0.1 %).
    assert!(
        close(at_tau, -3_000.0 * (1.0 - (-1.0f32).exp()), 6.0),
        "{at_tau}"
    );
    assert!(
        close(s.setpoint_w, -3_000.0 * (1.0 - (-3.0f32).exp()), 6.0),
        "{}",
        s.setpoint_w
    );
    // Back into the band: decays toward self-consumption (0 W here) with the same constant.
    let x = Inputs {
        voltage_v: 235.0,
        ..x
    };
    let start = s.setpoint_w;
    for _ in 0..1000 {
        c.step(&mut s, &x);
    }
    assert!(
        close(s.setpoint_w, start * (-1.0f32).exp(), 6.0),
        "{}",
        s.setpoint_w
    );
}

#[test]
fn ramp_limit_caps_the_change() {
    let c = ControllerConfig {
        ramp_w_per_s: 100.0,
        tau_s: 0.0,
        ..config(false)
    };
    let mut s = ControllerState::default();
    let x = Inputs {
        dt_s: 1.0,
        voltage_v: 200.0,
        pv_w: 0.0,
        load_w: 0.0,
        soc_pct: 50.0,
    };
    for k in 1..=5 {
        assert_eq!(c.step(&mut s, &x).setpoint_w, -100.0 * k as f32);
    }
}

#[test]
fn soc_window_is_never_crossed() {
    let c = config(false);
    let mut s = ControllerState::default();
    let mut soc = 50.0f32;
    let dt = 60.0;
    let mut min_soc = soc;
    let mut max_soc = soc;
    // Two hours of full feed-back, then four of full grid charging.
    for k in 0..360 {
        let v = if k < 120 { 210.0 } else { 260.0 };
        let out = c.step(
            &mut s,
            &Inputs {
                dt_s: dt,
                voltage_v: v,
                pv_w: 0.0,
                load_w: 0.0,
                soc_pct: soc,
            },
        );
        soc += out.setpoint_w * dt / 3600.0 / c.battery.capacity_wh * 100.0;
        min_soc = min_soc.min(soc);
        max_soc = max_soc.max(soc);
    }
    assert!(min_soc >= 10.0 - 1e-3, "{min_soc}");
    assert!(max_soc <= 90.0 + 1e-3, "{max_soc}");
    assert!(
        min_soc < 10.5 && max_soc > 89.5,
        "the window was used: {min_soc}..{max_soc}"
    );
    // At the bottom of the window nothing is discharged, and that is reported.
    let mut s = ControllerState {
        setpoint_w: -3_000.0,
    };
    let out = c.step(
        &mut s,
        &Inputs {
            dt_s: 1.0,
            voltage_v: 210.0,
            pv_w: 0.0,
            load_w: 0.0,
            soc_pct: 10.0,
        },
    );
    assert_eq!(out.setpoint_w, 0.0);
    assert!(out.soc_limited);
}

#[test]
fn pv_priority_counts_own_production_toward_the_charge_demand() {
    // 246 V: the droop asks for half of 3000 W. The panels have a 2000 W surplus.
    let (v, pv, load) = (246.0, 2_400.0, 400.0);
    let on = config(true).target_w(v, pv, load).0;
    let off = config(false).target_w(v, pv, load).0;
    // On: the surplus (2000 W) already exceeds the 1500 W demand; nothing from the grid.
    assert_eq!(on, 2_000.0);
    // Off: 1500 W from the grid on top of the 2000 W surplus (3000 W after the battery limit).
    assert_eq!(off, 3_500.0);
    let grid_import = |battery_w: f32| load + battery_w.min(3_000.0) - pv;
    assert_eq!(grid_import(on), 0.0);
    assert_eq!(grid_import(off), 1_000.0);
    // Without PV surplus both settings behave alike.
    assert_eq!(
        config(true).target_w(v, 0.0, 400.0),
        config(false).target_w(v, 0.0, 400.0)
    );
}

#[test]
fn thirty_controllers_on_one_cable_settle_after_a_load_step() {
    // The test's cable: 240 V at the transformer and a 0.04 Ω common impedance, carrying the
    // 30 cooperative households (import `load + battery`) and 100 kW of other households, all
    // at 230 V. With the batteries covering only their own load the voltage sits at
    // 240 − 0.04 · 100000 / 230 = 222.6 V, below the 226 V limit, so they must feed back.
    let c = ControllerConfig {
        ramp_w_per_s: 500.0,
        ..config(false)
    };
    let n = 30;
    let mut states = vec![ControllerState::default(); n];
    let mut soc = vec![50.0f32; n];
    let dt = 1.0f32;
    let voltage = |states: &[ControllerState], load_w: f32| -> f32 {
        let import_w: f32 = 100_000.0 + states.iter().map(|s| load_w + s.setpoint_w).sum::<f32>();
        240.0 - 0.04 * import_w / 230.0
    };
    let mut run = |states: &mut Vec<ControllerState>, load_w: f32, seconds: f32| -> Vec<f32> {
        let mut trace = Vec::new();
        for _ in 0..(seconds / dt) as usize {
            let v = voltage(states, load_w);
            for (s, soc) in states.iter_mut().zip(soc.iter_mut()) {
                let out = c.step(
                    s,
                    &Inputs {
                        dt_s: dt,
                        voltage_v: v,
                        pv_w: 0.0,
                        load_w,
                        soc_pct: *soc,
                    },
                );
                *soc += out.setpoint_w * dt / 3600.0 / c.battery.capacity_wh * 100.0;
            }
            trace.push(states[0].setpoint_w);
        }
        trace
    };
    run(&mut states, 300.0, 20.0 * c.tau_s);
    // The evening step: every cooperative household's load jumps from 300 W to 2000 W.
    let trace = run(&mut states, 2_000.0, 12.0 * c.tau_s);
    let after = &trace[(10.0 * c.tau_s / dt) as usize..];
    let lo = after.iter().cloned().fold(f32::MAX, f32::min);
    let hi = after.iter().cloned().fold(f32::MIN, f32::max);
    let swing = hi - lo;
    assert!(
        swing < 0.01 * c.battery.max_discharge_w,
        "swing {swing} W after ten time constants"
    );
    // Settled where the droop says: own load plus a feed-back share, the voltage pulled up.
    // By hand: f = (226 − 222.6)/4 − 15.65 f/4 → f ≈ 0.173, so about −2000 − 520 W each.
    let end = *trace.last().unwrap();
    assert!(close(end, -2_520.0, 30.0), "{end}");
    assert!(
        voltage(&states, 2_000.0) > 225.0,
        "{}",
        voltage(&states, 2_000.0)
    );
}

#[test]
fn garbage_inputs_never_panic_or_escape_limits() {
    let c = config(true);
    let mut s = ControllerState::default();
    let mut rng = super::Rng(7);
    let vals = [
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        -1.0,
        0.0,
        1e30,
        -1e30,
        230.0,
        250.0,
        200.0,
    ];
    for _ in 0..10_000 {
        let pick = |rng: &mut super::Rng| vals[rng.below(vals.len())];
        let x = Inputs {
            dt_s: pick(&mut rng),
            voltage_v: pick(&mut rng),
            pv_w: pick(&mut rng),
            load_w: pick(&mut rng),
            soc_pct: pick(&mut rng),
        };
        let out = c.step(&mut s, &x);
        assert!(out.setpoint_w.is_finite());
        assert!(out.setpoint_w <= 3_000.0 && out.setpoint_w >= -3_000.0);
    }
}
