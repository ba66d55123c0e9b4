//! The installation's log of quarter-hour readings: a fixed-capacity ring buffer in RAM,
//! served page by page to the pipeline (`docs/interfaces/installation.md`).
//!
//! Sequence numbers are contiguous and only grow, across reboots too: a device persists every
//! reading as it is closed and, after a power cut, restores the log with [`ReadingsLog::restore`]
//! so numbering continues after the last persisted seq. Because numbers are contiguous, a
//! reading's seq is not stored: it is `first_seq + position`.

/// A production meter's identifier (e.g. `SDM120-0012345`), ASCII, at most 23 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MeterId {
    len: u8,
    bytes: [u8; 23],
}

impl MeterId {
    /// `None` when longer than 23 bytes or not ASCII.
    pub fn new(s: &str) -> Option<Self> {
        let src = s.as_bytes();
        if src.len() > 23 || !s.is_ascii() {
            return None;
        }
        let mut bytes = [0u8; 23];
        bytes.get_mut(..src.len())?.copy_from_slice(src);
        Some(MeterId {
            len: src.len() as u8,
            bytes,
        })
    }

    pub fn as_str(&self) -> &str {
        let b = self.bytes.get(..usize::from(self.len)).unwrap_or(&[]);
        core::str::from_utf8(b).unwrap_or("")
    }
}

/// One quarter-hour, as the endpoint serves it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    pub seq: u64,
    /// End of the quarter-hour, seconds since the Unix epoch (UTC), on a quarter-hour.
    pub t_end_s: i64,
    pub p_meter: MeterId,
    /// Cumulative registers in Wh.
    pub p_wh: u64,
    pub battery_charge_wh: u64,
    pub battery_discharge_wh: u64,
    pub soc_pct: Option<f32>,
    pub voltage: Option<VoltageStats>,
}

/// Grid voltage over a quarter-hour, from per-second samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VoltageStats {
    pub avg_v: f32,
    pub min_v: f32,
    pub max_v: f32,
}

/// Aggregates per-second voltage samples into a quarter-hour's mean, minimum and maximum.
/// The sum is kept in millivolts as an integer: 900 samples of f32 would lose the last digit.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct VoltageAggregator {
    sum_mv: u64,
    count: u32,
    min_v: f32,
    max_v: f32,
}

impl VoltageAggregator {
    pub fn add(&mut self, v: f32) {
        if !(v.is_finite() && v > 0.0 && v < 1000.0) {
            return; // an unreadable sample is skipped, not averaged in
        }
        if self.count == 0 || v < self.min_v {
            self.min_v = v;
        }
        if self.count == 0 || v > self.max_v {
            self.max_v = v;
        }
        self.sum_mv += (v * 1000.0 + 0.5) as u64;
        self.count += 1;
    }

    /// The quarter-hour's statistics (None without samples), and a fresh aggregator.
    pub fn finish(&mut self) -> Option<VoltageStats> {
        let out = (self.count > 0).then(|| VoltageStats {
            avg_v: (self.sum_mv as f64 / f64::from(self.count) / 1000.0) as f32,
            min_v: self.min_v,
            max_v: self.max_v,
        });
        *self = Self::default();
        out
    }
}

/// A reading in the buffer, packed to 40 bytes: time as quarter-hours since the epoch, the
/// meter as an index into the log's small meter table, SoC in 0.01 % and voltages in 0.01 V
/// (`u16::MAX`: none). Its seq is implicit.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Slot {
    t_quarter: u32,
    meter: u8,
    p_wh: u64,
    battery_charge_wh: u64,
    battery_discharge_wh: u64,
    soc_cpct: u16,
    v_cv: [u16; 3],
}

const NONE16: u16 = u16::MAX;

/// Filler for slots not (yet) holding a reading; `head` and `len` say which slots do.
const EMPTY: Slot = Slot {
    t_quarter: 0,
    meter: 0,
    p_wh: 0,
    battery_charge_wh: 0,
    battery_discharge_wh: 0,
    soc_cpct: NONE16,
    v_cv: [NONE16; 3],
};

fn pack(x: Option<f32>, scale: f32) -> u16 {
    match x {
        Some(v) if v.is_finite() && v >= 0.0 && v * scale < 65_534.5 => (v * scale + 0.5) as u16,
        _ => NONE16,
    }
}

fn unpack(x: u16, scale: f32) -> Option<f32> {
    (x != NONE16).then(|| f32::from(x) / scale)
}

/// Production meters the buffer can refer to at once (a meter exchange adds one).
pub const METERS: usize = 4;

/// What [`ReadingsLog::page`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// Readings written to the output slice.
    pub count: usize,
    /// The cursor for the next request: the last seq returned, or `after` when none.
    pub next_after: u64,
    pub has_more: bool,
    /// `after` was older than the oldest kept reading: readings in between are gone.
    pub gap: bool,
}

/// Ring buffer of the last `N` readings.
pub struct ReadingsLog<const N: usize> {
    slots: [Slot; N],
    meters: [Option<MeterId>; METERS],
    /// Index of the oldest reading.
    head: usize,
    len: usize,
    /// Seq of the oldest reading (or of the next one when empty).
    first_seq: u64,
}

impl<const N: usize> ReadingsLog<N> {
    /// An empty log whose first reading gets seq `next_seq` (1 on a new device).
    pub const fn new(next_seq: u64) -> Self {
        ReadingsLog {
            slots: [EMPTY; N],
            meters: [None; METERS],
            head: 0,
            len: 0,
            first_seq: if next_seq == 0 { 1 } else { next_seq },
        }
    }

    /// Rebuilds the log after a reboot from persisted readings in seq order; numbering goes on
    /// after the last one. Readings that do not follow in seq are skipped.
    pub fn restore(persisted: impl IntoIterator<Item = Reading>, last_persisted_seq: u64) -> Self {
        let mut log = Self::new(last_persisted_seq.saturating_add(1));
        let mut first = true;
        for r in persisted {
            if first {
                log.first_seq = r.seq;
                first = false;
            }
            if r.seq == log.next_seq() {
                log.push_reading(&r);
            }
        }
        if log.next_seq() <= last_persisted_seq {
            // Persisted readings ended early: keep numbering after the last persisted seq.
            log = Self::new(last_persisted_seq.saturating_add(1));
        }
        log
    }

    pub const fn capacity(&self) -> usize {
        N
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The seq the next reading will get.
    pub fn next_seq(&self) -> u64 {
        self.first_seq + self.len as u64
    }

    /// Seq of the oldest kept reading.
    pub fn oldest_seq(&self) -> Option<u64> {
        (self.len > 0).then_some(self.first_seq)
    }

    fn push_slot(&mut self, slot: Slot) {
        if N == 0 {
            self.first_seq += 1;
            return;
        }
        if self.len == N {
            // Full: the oldest makes room; the newest is never lost.
            if let Some(s) = self.slots.get_mut(self.head) {
                *s = slot;
            }
            self.head = (self.head + 1) % N;
            self.first_seq += 1;
        } else {
            let idx = (self.head + self.len) % N;
            if let Some(s) = self.slots.get_mut(idx) {
                *s = slot;
            }
            self.len += 1;
        }
    }

    /// Appends a closed quarter-hour and returns its seq.
    #[allow(clippy::too_many_arguments)]
    pub fn push(
        &mut self,
        t_end_s: i64,
        p_meter: MeterId,
        p_wh: u64,
        battery_charge_wh: u64,
        battery_discharge_wh: u64,
        soc_pct: Option<f32>,
        voltage: Option<VoltageStats>,
    ) -> u64 {
        let seq = self.next_seq();
        self.push_reading(&Reading {
            seq,
            t_end_s,
            p_meter,
            p_wh,
            battery_charge_wh,
            battery_discharge_wh,
            soc_pct,
            voltage,
        });
        seq
    }

    /// Index of `id` in the meter table, adding it in a free (or no longer used) entry.
    fn meter_index(&mut self, id: MeterId) -> u8 {
        if let Some(i) = self.meters.iter().position(|m| *m == Some(id)) {
            return i as u8;
        }
        let in_use = |i: usize| {
            (0..self.len).any(|k| {
                self.slots
                    .get((self.head + k) % N)
                    .is_some_and(|s| usize::from(s.meter) == i)
            })
        };
        let free = (0..METERS)
            .find(|&i| self.meters.get(i).is_some_and(|m| m.is_none()))
            .or_else(|| (0..METERS).find(|&i| !in_use(i)))
            .unwrap_or(0);
        if let Some(m) = self.meters.get_mut(free) {
            *m = Some(id);
        }
        free as u8
    }

    fn push_reading(&mut self, r: &Reading) {
        let meter = self.meter_index(r.p_meter);
        let v = r.voltage;
        let slot = Slot {
            t_quarter: u32::try_from(r.t_end_s.div_euclid(900)).unwrap_or(0),
            meter,
            p_wh: r.p_wh,
            battery_charge_wh: r.battery_charge_wh,
            battery_discharge_wh: r.battery_discharge_wh,
            soc_cpct: pack(r.soc_pct, 100.0),
            v_cv: [
                pack(v.map(|v| v.avg_v), 100.0),
                pack(v.map(|v| v.min_v), 100.0),
                pack(v.map(|v| v.max_v), 100.0),
            ],
        };
        self.push_slot(slot);
    }

    /// The reading with sequence number `seq`, when still kept.
    pub fn get(&self, seq: u64) -> Option<Reading> {
        if seq < self.first_seq || seq >= self.next_seq() || N == 0 {
            return None;
        }
        let offset = usize::try_from(seq - self.first_seq).ok()?;
        let slot = *self.slots.get((self.head + offset) % N)?;
        let p_meter = (*self.meters.get(usize::from(slot.meter))?)?;
        let voltage = match (
            unpack(slot.v_cv[0], 100.0),
            unpack(slot.v_cv[1], 100.0),
            unpack(slot.v_cv[2], 100.0),
        ) {
            (Some(avg_v), Some(min_v), Some(max_v)) => Some(VoltageStats {
                avg_v,
                min_v,
                max_v,
            }),
            _ => None,
        };
        Some(Reading {
            seq,
            t_end_s: i64::from(slot.t_quarter) * 900,
            p_meter,
            p_wh: slot.p_wh,
            battery_charge_wh: slot.battery_charge_wh,
            battery_discharge_wh: slot.battery_discharge_wh,
            soc_pct: unpack(slot.soc_cpct, 100.0),
            voltage,
        })
    }

    /// Readings after `after`, at most `out.len()`, written to `out` (the page size).
    pub fn page(&self, after: u64, out: &mut [Reading]) -> Page {
        let oldest = self.first_seq;
        // `after` 0 (a client that never fetched) is a gap too when the log no longer starts at
        // seq 1: those first readings are gone (the contract: `after` older than the oldest).
        let gap = self.len > 0 && after.saturating_add(1) < oldest;
        let mut seq = if after < oldest { oldest } else { after + 1 };
        let mut count = 0;
        let mut next_after = after;
        for slot in out.iter_mut() {
            let Some(r) = self.get(seq) else { break };
            *slot = r;
            next_after = seq;
            count += 1;
            seq += 1;
        }
        Page {
            count,
            next_after,
            has_more: seq < self.next_seq(),
            gap,
        }
    }
}

/// Bytes one kept reading takes in RAM (for sizing the buffer; see the README).
pub const SLOT_BYTES: usize = core::mem::size_of::<Slot>();
