//! A radial low-voltage feeder with three phases and the neutral: node voltages by
//! backward/forward sweep.
//!
//! The model: the transformer holds a balanced source (`v_source_v` phase to neutral, phases
//! 120° apart) and earths the neutral at the cable's start. Every segment has four conductors
//! of the same cross-section (a street cable NAYY 4x…: three phases and the neutral, no
//! separate earth), each with the cable type's `(R + jX) · length`; the coupling between the
//! cores is left out. Loads are constant power between a phase and the neutral (a house that
//! feeds back draws negative power); a three-phase load draws a third on each phase.
//!
//! Each iteration: the backward sweep takes each load's current `I = conj(S / (V_p − V_n))`
//! and sums the currents below each segment, phase by phase; the neutral carries back what the
//! phases bring, `J_n = −(J_a + J_b + J_c)`, which is zero for balanced loads and the whole
//! current for one single-phase house. The forward sweep walks from the transformer,
//! `V_k = V_parent − Z · J_k` for every conductor. It stops when no voltage moves by more than
//! 1 µV. A single-phase house therefore sees twice a segment's drop when it is alone, and less
//! when the other phases balance it; the unloaded phases see the neutral's shift.
//!
//! [`Neutral::Earthed`] holds the neutral at earth potential at every node instead (no
//! neutral current, no shift). Both are compared with Alliander's `power-grid-model`, whose
//! asymmetric lines are given by sequence impedances: zero-sequence equal to positive gives
//! uncoupled phases with an ideal return (`Earthed`); zero-sequence four times the positive
//! gives a phase self-impedance 2Z and mutual Z, which is exactly a neutral conductor of the
//! same Z earthed at the transformer (`Conductor`).
//!
//! A feeder that cannot carry its load (a phase voltage collapsing, or no fixed point within
//! 100 sweeps) has no solution: [`Network::solve`] says so rather than return a wrong one.

/// A complex number, just what the sweep needs.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct C {
    pub re: f64,
    pub im: f64,
}

impl C {
    pub const fn new(re: f64, im: f64) -> Self {
        C { re, im }
    }
    fn add(self, o: C) -> C {
        C::new(self.re + o.re, self.im + o.im)
    }
    fn sub(self, o: C) -> C {
        C::new(self.re - o.re, self.im - o.im)
    }
    fn mul(self, o: C) -> C {
        C::new(
            self.re * o.re - self.im * o.im,
            self.re * o.im + self.im * o.re,
        )
    }
    fn div(self, o: C) -> C {
        let d = o.re * o.re + o.im * o.im;
        C::new(
            (self.re * o.re + self.im * o.im) / d,
            (self.im * o.re - self.re * o.im) / d,
        )
    }
    fn conj(self) -> C {
        C::new(self.re, -self.im)
    }
    fn scale(self, k: f64) -> C {
        C::new(self.re * k, self.im * k)
    }
    pub fn abs(self) -> f64 {
        self.re.hypot(self.im)
    }
    /// |z|², without the square root (the sweep compares magnitudes often).
    fn norm2(self) -> f64 {
        self.re * self.re + self.im * self.im
    }
}

/// How the neutral is modelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Neutral {
    /// A conductor earthed at the transformer only: it carries the unbalance.
    Conductor,
    /// At earth potential at every node (power-grid-model's asymmetric line model).
    Earthed,
}

/// One segment: from `parent` (a node index, or `None` for the transformer) to its node.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Segment {
    pub parent: Option<usize>,
    /// Impedance of one conductor over the segment's length, Ω.
    pub r_ohm: f64,
    pub x_ohm: f64,
}

/// A radial feeder: node `k` is fed by `segments[k]`, whose parent comes before it.
#[derive(Debug, Clone, PartialEq)]
pub struct Network {
    pub v_source_v: f64,
    pub segments: Vec<Segment>,
    pub neutral: Neutral,
}

/// Power drawn at a node per phase (W; negative when fed back), unity power factor.
pub type PhasePower = [f64; 3];

/// Phase-to-neutral voltage magnitudes at a node, L1..L3.
pub type PhaseVoltages = [f64; 3];

const SQRT3_2: f64 = 0.866_025_403_784_438_6;

impl Network {
    /// The electrical model of a cable's feeder as the registry describes it.
    pub fn of(topology: &crate::feeders::Topology, v_source_v: f64, neutral: Neutral) -> Network {
        Network {
            v_source_v,
            neutral,
            segments: topology
                .nodes
                .iter()
                .map(|n| Segment {
                    parent: n.parent,
                    r_ohm: n.cable_type.r_ohm_per_km * n.length_m / 1000.0,
                    x_ohm: n.cable_type.x_ohm_per_km * n.length_m / 1000.0,
                })
                .collect(),
        }
    }

    /// Voltage magnitudes (phase to neutral) at every node for the power each node draws;
    /// `None` when the sweep finds no solution (the load collapses a voltage below a tenth of
    /// the source's, or the voltages still move after 100 sweeps).
    pub fn solve(&self, draw_w: &[PhasePower]) -> Option<Vec<PhaseVoltages>> {
        let n = self.segments.len();
        assert_eq!(draw_w.len(), n, "one power triple per node");
        let vs = self.v_source_v;
        let source = [
            C::new(vs, 0.0),
            C::new(-0.5 * vs, -SQRT3_2 * vs),
            C::new(-0.5 * vs, SQRT3_2 * vs),
        ];
        let z: Vec<C> = self
            .segments
            .iter()
            .map(|s| C::new(s.r_ohm, s.x_ohm))
            .collect();
        // Per node: the three phases and the neutral.
        let mut v: Vec<[C; 4]> = vec![[source[0], source[1], source[2], C::default()]; n];
        let mut j: Vec<[C; 4]> = vec![[C::default(); 4]; n];
        let floor2 = (0.1 * vs).powi(2);
        let mut converged = false;
        for _ in 0..100 {
            // Backward: load currents, then the current through each segment (children come
            // after their parent, so a reverse walk has every child summed before its parent).
            for k in 0..n {
                let mut node = [C::default(); 4];
                for p in 0..3 {
                    let across = v[k][p].sub(v[k][3]);
                    // Not finite (a NaN compares false) or collapsed: no solution.
                    let magnitude2 = across.norm2();
                    if !magnitude2.is_finite() || magnitude2 < floor2 || !draw_w[k][p].is_finite() {
                        return None;
                    }
                    let s = C::new(draw_w[k][p], 0.0);
                    node[p] = if draw_w[k][p] == 0.0 {
                        C::default()
                    } else {
                        s.div(across).conj()
                    };
                }
                node[3] = node[0].add(node[1]).add(node[2]).scale(-1.0);
                j[k] = node;
            }
            for k in (0..n).rev() {
                if let Some(parent) = self.segments[k].parent {
                    let below = j[k];
                    for c in 0..4 {
                        j[parent][c] = j[parent][c].add(below[c]);
                    }
                }
            }
            // Forward: voltages from the transformer out.
            let mut moved: f64 = 0.0;
            for k in 0..n {
                let up = match self.segments[k].parent {
                    Some(parent) => v[parent],
                    None => [source[0], source[1], source[2], C::default()],
                };
                let mut next = [C::default(); 4];
                for c in 0..3 {
                    next[c] = up[c].sub(z[k].mul(j[k][c]));
                }
                next[3] = match self.neutral {
                    Neutral::Conductor => up[3].sub(z[k].mul(j[k][3])),
                    Neutral::Earthed => C::default(),
                };
                for c in 0..4 {
                    moved = moved.max(next[c].sub(v[k][c]).norm2());
                }
                v[k] = next;
            }
            // No voltage moved by 1 µV (compared squared).
            if moved < 1e-12 {
                converged = true;
                break;
            }
        }
        if !converged {
            return None;
        }
        let out: Vec<PhaseVoltages> = v
            .into_iter()
            .map(|node| {
                [
                    node[0].sub(node[3]).abs(),
                    node[1].sub(node[3]).abs(),
                    node[2].sub(node[3]).abs(),
                ]
            })
            .collect();
        out.iter().flatten().all(|x| x.is_finite()).then_some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// NAYY 4x150 (R 0.208, X 0.080 Ω/km) over 100 m: 0.0208 + j0.0080 Ω per conductor.
    fn two_segments(neutral: Neutral) -> Network {
        let seg = |parent| Segment {
            parent,
            r_ohm: 0.0208,
            x_ohm: 0.008,
        };
        Network {
            v_source_v: 230.0,
            segments: vec![seg(None), seg(Some(0))],
            neutral,
        }
    }

    #[test]
    fn one_single_phase_load_matches_the_hand_calculation() {
        // 5,750 W on L1 at the far node, nothing else. The current goes out on L1 and back on
        // the neutral: the loop is 2 · 0.2 km of conductor, 2Z = 0.0832 + j0.0320 Ω.
        // By hand, V = 230 − 2Z · conj(S / V):
        //  pass 1, V = 230: I = 25 A, drop 2.0800 + j0.8000 → V = 227.9200 − j0.8000;
        //  pass 2: I = 5750 · (227.92 − j0.80) / (227.92² + 0.80²) = 25.2272 − j0.0885 A;
        //   drop 2Z · I = 2.1017 + j0.7999 → |V| = 227.8997; further passes move it by
        //   less than 0.001 V (the fixed point is 227.8994, I = 25.2303 − j0.0886 A).
        // The middle node sees half the loop: |230 − 2 · Z_seg · I| = 228.9494.
        // The neutral rises by Z · I along the way: at the far end by Z_total · I =
        // 1.0509 + j0.3999 V, so L2 = 230∠−120° − that = −116.0509 − j199.5858, |L2| = 230.873,
        // and L3 = −116.0509 + j198.7859, |L3| = 230.182; at the middle node by half that:
        // |L2| = 230.436, |L3| = 230.090.
        let v = two_segments(Neutral::Conductor)
            .solve(&[[0.0; 3], [5750.0, 0.0, 0.0]])
            .unwrap();
        let hand = [[228.9494, 230.436, 230.090], [227.8994, 230.873, 230.182]];
        for (node, want) in hand.iter().enumerate() {
            for p in 0..3 {
                assert!(
                    (v[node][p] - want[p]).abs() < 0.1,
                    "node {node} L{}: {} vs {}",
                    p + 1,
                    v[node][p],
                    want[p]
                );
            }
        }
        // With the neutral earthed everywhere the current returns through earth at no cost:
        // half the drop on L1 (|230 − Z_total · I| ≈ 228.95 V), the other phases untouched.
        let v = two_segments(Neutral::Earthed)
            .solve(&[[0.0; 3], [5750.0, 0.0, 0.0]])
            .unwrap();
        assert!((v[1][0] - 228.95).abs() < 0.1, "{v:?}");
        assert!((v[1][1] - 230.0).abs() < 1e-9 && (v[1][2] - 230.0).abs() < 1e-9);
    }

    #[test]
    fn a_balanced_load_leaves_the_neutral_at_earth() {
        // 3 × 1,916.67 W: no neutral current, every phase drops Z · I only, as the
        // earthed model says.
        let third = 5750.0 / 3.0;
        let a = two_segments(Neutral::Conductor)
            .solve(&[[0.0; 3], [third; 3]])
            .unwrap();
        let b = two_segments(Neutral::Earthed)
            .solve(&[[0.0; 3], [third; 3]])
            .unwrap();
        for node in 0..2 {
            for p in 0..3 {
                assert!((a[node][p] - b[node][p]).abs() < 1e-6, "{a:?} {b:?}");
            }
        }
        // By hand: I = 8.333 A per phase, Z_total · I = 0.3467 V → 229.653 V at the far end.
        assert!((a[1][0] - 229.653).abs() < 0.01, "{a:?}");
    }

    #[test]
    fn a_load_the_feeder_cannot_carry_has_no_solution() {
        // 5 km of NAYY 4x50 (3.21 Ω per conductor, 6.42 Ω loop) cannot deliver 3 kW on one
        // phase: P_max = V² / (4 R) = 230² / 25.7 ≈ 2.06 kW. No fixed point; no answer.
        let net = Network {
            v_source_v: 230.0,
            segments: vec![Segment {
                parent: None,
                r_ohm: 3.21,
                x_ohm: 0.415,
            }],
            neutral: Neutral::Conductor,
        };
        assert_eq!(net.solve(&[[3000.0, 0.0, 0.0]]), None);
        assert_eq!(net.solve(&[[f64::NAN, 0.0, 0.0]]), None);
        // 1 kW it can: by hand V = 230 − 6.42 · 1000 / V, the upper root of
        // V² − 230 V + 6420 = 0: (230 + √27220) / 2 = 197.49 V (the reactance, in quadrature,
        // moves it by about 0.05 V).
        let v = net.solve(&[[1000.0, 0.0, 0.0]]).unwrap();
        assert!((v[0][0] - 197.49).abs() < 0.2, "{v:?}");
    }
}
