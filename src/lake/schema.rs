//! Table specifications: columns, types, units, sort key and partitioning of every lake table.
//! The data dictionary (`docs/data-dictionary.md`) documents the same tables; a test checks
//! that the files written match it, read by an independent reader.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// Version of the lake layout, written into every file's key-value metadata.
pub const SCHEMA_VERSION: &str = "3";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColType {
    Utf8,
    Int64,
    Float64,
    Bool,
    /// `Timestamp(us, UTC)`.
    TimestampUtc,
    /// `Date32`: a local calendar day.
    Date,
}

#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub name: &'static str,
    pub ty: ColType,
    pub nullable: bool,
    /// Unit for the metadata (`Wh`, `V`, `%`, `UTC`, or empty).
    pub unit: &'static str,
}

/// How a table is split into hive partitions (`key=value` folders).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Partitioning {
    None,
    /// `date=YYYY-MM-DD` (a local calendar day).
    Date,
    /// `year=YYYY` (a local calendar year).
    Year,
}

impl Partitioning {
    /// The folder name's key.
    pub fn key(self) -> &'static str {
        match self {
            Partitioning::None => "",
            Partitioning::Date => "date",
            Partitioning::Year => "year",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct TableSpec {
    pub name: &'static str,
    pub columns: &'static [Column],
    pub sort_by: &'static [&'static str],
    pub partitioning: Partitioning,
}

/// A column of a table specification.
pub const fn col(name: &'static str, ty: ColType, nullable: bool, unit: &'static str) -> Column {
    Column {
        name,
        ty,
        nullable,
        unit,
    }
}

use ColType::*;

pub const GRID_READINGS: TableSpec = TableSpec {
    name: "grid_readings",
    columns: &[
        col("ean", Utf8, false, ""),
        col("meter_id", Utf8, false, ""),
        col("t", TimestampUtc, false, "UTC"),
        col("import_wh", Int64, false, "Wh"),
        col("export_wh", Int64, false, "Wh"),
        col("quality", Utf8, false, ""),
        col("received_at", TimestampUtc, false, "UTC"),
        col("delivery_seq", Int64, false, ""),
        col("cursor", Utf8, false, ""),
        // Schema 3: the run that stored the row (null in rows of older lakes).
        col("run_id", Utf8, true, ""),
    ],
    sort_by: &["ean", "meter_id", "t", "delivery_seq"],
    partitioning: Partitioning::Date,
};

pub const GRID_DAYS: TableSpec = TableSpec {
    name: "grid_days",
    columns: &[
        col("ean", Utf8, false, ""),
        col("meter_id", Utf8, false, ""),
        col("import_t1_wh", Int64, false, "Wh"),
        col("import_t2_wh", Int64, false, "Wh"),
        col("export_t1_wh", Int64, false, "Wh"),
        col("export_t2_wh", Int64, false, "Wh"),
        col("received_at", TimestampUtc, false, "UTC"),
        col("delivery_seq", Int64, false, ""),
        col("cursor", Utf8, false, ""),
        // Schema 3: the run that stored the row (null in rows of older lakes).
        col("run_id", Utf8, true, ""),
    ],
    sort_by: &["ean", "meter_id", "delivery_seq"],
    partitioning: Partitioning::Date,
};

pub const REJECTED: TableSpec = TableSpec {
    name: "rejected",
    columns: &[
        col("source", Utf8, false, ""),
        col("received_at", TimestampUtc, false, "UTC"),
        col("key", Utf8, false, ""),
        col("reason", Utf8, false, ""),
        col("detail", Utf8, false, ""),
        col("payload", Utf8, false, "JSON"),
        col("record_id", Utf8, false, ""),
        col("delivery_seq", Int64, true, ""),
        col("cursor", Utf8, true, ""),
    ],
    sort_by: &["source", "reason", "key", "record_id"],
    partitioning: Partitioning::Date,
};

pub const INSTALLATION_READINGS: TableSpec = TableSpec {
    name: "installation_readings",
    columns: &[
        col("installation_id", Utf8, false, ""),
        col("ean", Utf8, false, ""),
        col("p_meter", Utf8, false, ""),
        col("seq", Int64, false, ""),
        col("t", TimestampUtc, false, "UTC"),
        col("p_wh", Int64, false, "Wh"),
        col("battery_charge_wh", Int64, false, "Wh"),
        col("battery_discharge_wh", Int64, false, "Wh"),
        col("soc_pct", Float64, true, "%"),
        col("voltage_avg_v", Float64, true, "V"),
        col("voltage_min_v", Float64, true, "V"),
        col("voltage_max_v", Float64, true, "V"),
        col("received_at", TimestampUtc, false, "UTC"),
        // Schema 3: the run that stored the row (null in rows of older lakes).
        col("run_id", Utf8, true, ""),
    ],
    sort_by: &["installation_id", "seq"],
    partitioning: Partitioning::Date,
};

pub const INSTALLATION_GAPS: TableSpec = TableSpec {
    name: "installation_gaps",
    columns: &[
        col("installation_id", Utf8, false, ""),
        col("ean", Utf8, false, ""),
        col("after_seq", Int64, false, ""),
        col("resumed_seq", Int64, true, ""),
        col("resumed_t", TimestampUtc, true, "UTC"),
        col("detected_at", TimestampUtc, false, "UTC"),
    ],
    sort_by: &["installation_id", "after_seq"],
    partitioning: Partitioning::None,
};

pub const INTERVALS: TableSpec = TableSpec {
    name: "intervals",
    columns: &[
        col("ean", Utf8, false, ""),
        col("cable_id", Utf8, false, ""),
        col("participant_id", Utf8, false, ""),
        col("interval_start", TimestampUtc, false, "UTC"),
        col("l_wh", Int64, true, "Wh"),
        col("t_wh", Int64, true, "Wh"),
        col("p_wh", Int64, true, "Wh"),
        col("v_wh", Int64, true, "Wh"),
        col("l_quality", Utf8, false, ""),
        col("p_quality", Utf8, true, ""),
    ],
    sort_by: &["ean", "interval_start"],
    partitioning: Partitioning::Date,
};

pub const CONSUMPTION_DAILY: TableSpec = TableSpec {
    name: "consumption_daily",
    columns: &[
        col("ean", Utf8, false, ""),
        col("participant_id", Utf8, false, ""),
        col("cable_id", Utf8, false, ""),
        col("date", Date, false, "local day"),
        col("l_wh", Int64, false, "Wh"),
        col("t_wh", Int64, false, "Wh"),
        col("p_wh", Int64, true, "Wh"),
        col("v_wh", Int64, false, "Wh"),
        col("intervals_expected", Int64, false, "quarter-hours"),
        col("intervals_measured", Int64, false, "quarter-hours"),
        col("intervals_estimated", Int64, false, "quarter-hours"),
        col("intervals_derived", Int64, false, "quarter-hours"),
        col("intervals_missing", Int64, false, "quarter-hours"),
        col("reconciled", Bool, true, ""),
    ],
    sort_by: &["ean", "date"],
    partitioning: Partitioning::Year,
};

pub const TAX_BASE_YEARLY: TableSpec = TableSpec {
    name: "tax_base_yearly",
    columns: &[
        col("ean", Utf8, false, ""),
        col("participant_id", Utf8, false, ""),
        col("year", Int64, false, ""),
        col("l_wh", Int64, false, "Wh"),
        col("t_wh", Int64, false, "Wh"),
        col("p_wh", Int64, true, "Wh"),
        col("v_wh", Int64, false, "Wh"),
        col("regime", Utf8, false, ""),
        col("taxable_wh", Int64, false, "Wh"),
        col("own_use_exempt_wh", Int64, false, "Wh"),
        col("member_days", Int64, false, "days"),
        col("energy_tax_ct", Int64, true, "ct"),
        col("tax_credit_ct", Int64, true, "ct"),
        col("net_energy_tax_ct", Int64, true, "ct"),
        col("exemption_saving_ct", Int64, true, "ct"),
        col("rates_confirmed", Bool, false, ""),
        col("complete", Bool, false, ""),
    ],
    sort_by: &["ean", "year"],
    partitioning: Partitioning::None,
};

pub const CABLE_BALANCE_15M: TableSpec = TableSpec {
    name: "cable_balance_15m",
    columns: &[
        col("cable_id", Utf8, false, ""),
        col("interval_start", TimestampUtc, false, "UTC"),
        col("connections", Int64, false, "connections"),
        col("connections_reporting", Int64, false, "connections"),
        col("connections_derived", Int64, false, "connections"),
        col("l_wh", Int64, false, "Wh"),
        col("t_wh", Int64, false, "Wh"),
        col("p_wh", Int64, false, "Wh"),
        col("v_wh", Int64, false, "Wh"),
        col("matched_wh", Int64, false, "Wh"),
        col("net_wh", Int64, false, "Wh"),
        col("voltage_avg_v", Float64, true, "V"),
        col("voltage_min_v", Float64, true, "V"),
        col("voltage_max_v", Float64, true, "V"),
        col("battery_net_wh", Int64, true, "Wh"),
    ],
    sort_by: &["cable_id", "interval_start"],
    partitioning: Partitioning::Date,
};

pub const CABLE_BALANCE_DAILY: TableSpec = TableSpec {
    name: "cable_balance_daily",
    columns: &[
        col("cable_id", Utf8, false, ""),
        col("date", Date, false, "local day"),
        col("l_wh", Int64, false, "Wh"),
        col("t_wh", Int64, false, "Wh"),
        col("p_wh", Int64, false, "Wh"),
        col("v_wh", Int64, false, "Wh"),
        col("matched_wh", Int64, false, "Wh"),
        col("connection_quarters_derived", Int64, false, "quarter-hours"),
        col("local_share", Float64, true, "fraction"),
        col("peak_import_wh", Int64, false, "Wh"),
        col("peak_export_wh", Int64, false, "Wh"),
        col("quarters_below_v_low", Int64, false, "quarter-hours"),
        col("quarters_above_v_high", Int64, false, "quarter-hours"),
    ],
    sort_by: &["cable_id", "date"],
    partitioning: Partitioning::Year,
};

pub const RUNS: TableSpec = TableSpec {
    name: "_runs",
    columns: &[
        col("run_id", Utf8, false, ""),
        col("job", Utf8, false, ""),
        col("started_at", TimestampUtc, false, "UTC"),
        col("finished_at", TimestampUtc, false, "UTC"),
        col("status", Utf8, false, ""),
        col("rows_in", Int64, false, "rows"),
        col("rows_out", Int64, false, "rows"),
        col("message", Utf8, false, ""),
    ],
    sort_by: &["started_at", "run_id"],
    partitioning: Partitioning::None,
};

/// Every table this version writes, for checks and the query command.
pub const ALL_TABLES: &[TableSpec] = &[
    GRID_READINGS,
    GRID_DAYS,
    INSTALLATION_READINGS,
    INSTALLATION_GAPS,
    REJECTED,
    INTERVALS,
    CONSUMPTION_DAILY,
    TAX_BASE_YEARLY,
    CABLE_BALANCE_15M,
    CABLE_BALANCE_DAILY,
    RUNS,
];

impl TableSpec {
    pub fn arrow_schema(&self) -> SchemaRef {
        let fields: Vec<Field> = self
            .columns
            .iter()
            .map(|c| Field::new(c.name, c.ty.arrow(), c.nullable))
            .collect();
        Arc::new(Schema::new(fields))
    }

    pub fn units_json(&self) -> String {
        let map: serde_json::Map<String, serde_json::Value> = self
            .columns
            .iter()
            .filter(|c| !c.unit.is_empty())
            .map(|c| (c.name.to_string(), c.unit.into()))
            .collect();
        serde_json::Value::Object(map).to_string()
    }

    pub fn column_index(&self, name: &str) -> usize {
        self.columns
            .iter()
            .position(|c| c.name == name)
            .unwrap_or_else(|| panic!("table {} has no column {name}", self.name))
    }
}

impl ColType {
    pub fn arrow(self) -> DataType {
        match self {
            Utf8 => DataType::Utf8,
            Int64 => DataType::Int64,
            Float64 => DataType::Float64,
            Bool => DataType::Boolean,
            TimestampUtc => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            Date => DataType::Date32,
        }
    }
}
