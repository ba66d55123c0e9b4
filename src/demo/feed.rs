//! The simulation's readings as the grid operator delivers them: per meter and local day an
//! interval object (quarter-hour registers in kWh, local offsets) and a day object (the tariff
//! registers at 00:00), with the imperfections of the real service: a meter exchange, a day
//! first delivered with estimates and corrected later, a rejection.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use serde_json::{json, Value};

use crate::domain::time::local_date_of_interval_end;
use crate::fake::synth::local_rfc3339;
use crate::fake::FeedEntry;
use crate::simulation::household::Registers;

/// One grid meter: its id and the register values when the simulation's count was zero.
#[derive(Debug, Clone)]
struct Meter {
    id: String,
    import_base_wh: i64,
    export_base_wh: i64,
}

/// A planned meter exchange: house, local day, and the quarter-hour end (UTC) it happens at.
#[derive(Debug, Clone, Copy)]
pub struct Exchange {
    pub house: usize,
    pub at: DateTime<Utc>,
}

pub struct GridFeed {
    tz: Tz,
    eans: Vec<String>,
    meters: Vec<Meter>,
    exchange: Option<Exchange>,
    /// The day of which one house's object is first delivered with estimates.
    late: Option<(usize, NaiveDate)>,
    /// Per house: (t, import, export) of the day being collected.
    day: Vec<Vec<(DateTime<Utc>, i64, i64)>>,
    /// Registers at the start of the day being collected (for the day object).
    start_regs: Vec<Option<(String, i64, i64)>>,
    /// Corrections waiting for the next delivery.
    pub held: Vec<FeedEntry>,
}

fn kwh(wh: i64) -> Value {
    json!(wh as f64 / 1000.0)
}

impl GridFeed {
    pub fn new(
        tz: Tz,
        eans: Vec<String>,
        seed: u64,
        exchange: Option<Exchange>,
        late: Option<(usize, NaiveDate)>,
    ) -> Self {
        let meters = eans
            .iter()
            .enumerate()
            .map(|(i, _)| {
                let base = 1_000_000
                    + (crate::simulation::weather::unit(seed, i as u64 + 500) * 20_000_000.0)
                        as i64;
                Meter {
                    id: format!("E00{i:014}"),
                    import_base_wh: base,
                    export_base_wh: base / 3,
                }
            })
            .collect();
        let n = eans.len();
        GridFeed {
            tz,
            eans,
            meters,
            exchange,
            late,
            day: vec![Vec::new(); n],
            start_regs: vec![None; n],
            held: Vec::new(),
        }
    }

    fn registers(&self, house: usize, regs: &Registers) -> (i64, i64) {
        let m = &self.meters[house];
        (
            m.import_base_wh + regs.import_wh,
            m.export_base_wh + regs.export_wh,
        )
    }

    /// The registers at the very start (the day object of the first day).
    pub fn start(&mut self, house: usize, regs: &Registers) {
        let (i, e) = self.registers(house, regs);
        self.start_regs[house] = Some((self.meters[house].id.clone(), i, e));
    }

    /// A quarter-hour reading of `house`'s grid meter.
    pub fn reading(&mut self, house: usize, t_end: DateTime<Utc>, regs: &Registers) {
        if let Some(x) = self.exchange.filter(|x| x.house == house && x.at == t_end) {
            // The old meter's last reading, then the new meter from (almost) zero.
            let (i, e) = self.registers(house, regs);
            self.day[house].push((t_end, i, e));
            self.flush_meter(house, t_end);
            let new = Meter {
                id: format!("E00{:014}", 90_000_000 + x.house),
                import_base_wh: 3 - regs.import_wh,
                export_base_wh: 1 - regs.export_wh,
            };
            self.meters[house] = new;
        }
        let (i, e) = self.registers(house, regs);
        self.day[house].push((t_end, i, e));
    }

    /// The interval object of what `house` collected, under its current meter.
    fn object(&self, house: usize, date: NaiveDate) -> Value {
        let items: Vec<Value> = self.day[house]
            .iter()
            .map(|(t, i, e)| json!({"t": local_rfc3339(*t, self.tz), "r180": kwh(*i), "r280": kwh(*e), "quality": "measured"}))
            .collect();
        json!({"ean": self.eans[house], "meter_id": self.meters[house].id, "query_date": date.to_string(), "unit": "kWh", "items": items})
    }

    /// At an exchange: the old meter's part of the day goes out as its own object.
    fn flush_meter(&mut self, house: usize, t_end: DateTime<Utc>) {
        let date = local_date_of_interval_end(t_end, self.tz);
        let obj = self.object(house, date);
        self.held.push(FeedEntry::interval(obj));
        self.day[house].clear();
    }

    /// Ends local day `date`: the objects to deliver now (the late day's estimate among them;
    /// its correction waits in `held` for the next delivery).
    pub fn end_day(&mut self, date: NaiveDate, regs: &[Registers]) -> Vec<FeedEntry> {
        let mut out = std::mem::take(&mut self.held);
        for (h, end_regs) in regs.iter().enumerate() {
            if let Some((meter, i, e)) = self.start_regs[h].take() {
                // Tariff registers at 00:00: low and normal tariff split 2 : 3.
                let (i1, e1) = (i * 2 / 5, e / 3);
                out.push(FeedEntry::day(json!({"ean": self.eans[h], "meter_id": meter, "query_date": date.to_string(), "unit": "kWh",
                    "r181": kwh(i1), "r182": kwh(i - i1), "r281": kwh(e1), "r282": kwh(e - e1)})));
            }
            let obj = self.object(h, date);
            if self.late == Some((h, date)) {
                let mut estimate = obj.clone();
                estimate_items(&mut estimate, 40, 48);
                out.push(FeedEntry::interval(estimate));
                self.held.push(FeedEntry::interval(obj));
            } else {
                out.push(FeedEntry::interval(obj));
            }
            self.day[h].clear();
            let (i, e) = self.registers(h, end_regs);
            self.start_regs[h] = Some((self.meters[h].id.clone(), i, e));
        }
        out
    }
}

/// Replaces items `from..to` by a straight line between their neighbours, marked
/// `estimated`, as the service does for readings it has not received yet.
fn estimate_items(obj: &mut Value, from: usize, to: usize) {
    let items = obj["items"].as_array_mut().expect("items");
    if items.len() <= to {
        return;
    }
    let wh = |v: &Value| (v.as_f64().unwrap_or(0.0) * 1000.0).round() as i64;
    let (a, b) = (&items[from - 1], &items[to]);
    let (ai, bi, ae, be) = (
        wh(&a["r180"]),
        wh(&b["r180"]),
        wh(&a["r280"]),
        wh(&b["r280"]),
    );
    let n = (to - from + 1) as i64;
    for (k, item) in items[from..to].iter_mut().enumerate() {
        let k = k as i64 + 1;
        item["r180"] = kwh(ai + (bi - ai) * k / n);
        item["r280"] = kwh(ae + (be - ae) * k / n);
        item["quality"] = "estimated".into();
    }
}

/// Per house and local day, what the simulation knows for sure (the ground truth the demo
/// writes next to the lake).
#[derive(Debug, Clone, Default)]
pub struct Truth {
    /// (house, date) → registers at the day's start and end.
    pub days: BTreeMap<(usize, NaiveDate), (Registers, Registers)>,
}

impl Truth {
    pub fn record(&mut self, house: usize, date: NaiveDate, start: Registers, end: Registers) {
        self.days.insert((house, date), (start, end));
    }

    /// `ean,date,l_wh,t_wh,p_wh,v_wh,load_wh,battery_losses_wh,stored_change_wh`; p and v of
    /// a house without installation as the pipeline defines them (no P; V = L).
    pub fn csv(&self, eans: &[String], installed: &[bool]) -> String {
        let mut o = String::from(
            "ean,date,l_wh,t_wh,p_wh,v_wh,load_wh,battery_losses_wh,stored_change_wh\n",
        );
        for ((h, date), (s, e)) in &self.days {
            let (l, t, p) = (
                e.import_wh - s.import_wh,
                e.export_wh - s.export_wh,
                e.pv_wh - s.pv_wh,
            );
            let stored = e.stored_wh - s.stored_wh;
            let losses = (e.charge_wh - s.charge_wh) - (e.discharge_wh - s.discharge_wh) - stored;
            let (p, v) = if installed[*h] {
                (p.to_string(), p + l - t)
            } else {
                (String::new(), l)
            };
            o += &format!(
                "{},{date},{l},{t},{p},{v},{},{losses},{stored}\n",
                eans[*h],
                e.load_wh - s.load_wh
            );
        }
        o
    }
}
