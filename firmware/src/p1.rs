//! DSMR P1 telegram parser over `&[u8]`: no allocation, no panics on any input.
//!
//! A telegram runs from `/` to `!`, followed by a CRC16/ARC of everything from `/` up to and
//! including `!` as (normally four) upper-case hex digits; DSMR before 4.0 sends no CRC. Lines
//! are `OBIS(value)(value)…`; unknown lines are skipped. Energy registers come in kWh with three
//! (or, on some meters, seven) decimals or in Wh, and are returned as integer Wh.

/// Why a buffer is not a usable telegram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum P1Error {
    /// No `/` starting a telegram.
    NoStart,
    /// No `!` ending the telegram.
    NoEnd,
    /// The CRC after `!` is not 1–4 hex digits.
    MalformedCrc,
    /// The CRC does not match the telegram.
    BadCrc { sent: u16, computed: u16 },
    /// A known OBIS line whose value cannot be read (line number from the header, 1-based).
    BadValue { line: u16 },
}

impl core::fmt::Display for P1Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            P1Error::NoStart => f.write_str("no telegram start `/` found"),
            P1Error::NoEnd => f.write_str("no telegram end `!` found"),
            P1Error::MalformedCrc => f.write_str("the CRC after `!` is not 1 to 4 hex digits"),
            P1Error::BadCrc { sent, computed } => {
                write!(
                    f,
                    "CRC mismatch: telegram says {sent:04X}, content gives {computed:04X}"
                )
            }
            P1Error::BadValue { line } => {
                write!(f, "line {line}: a known register has an unreadable value")
            }
        }
    }
}

/// Whether the telegram carried a CRC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crc {
    /// Present and correct.
    Valid(u16),
    /// Not sent (DSMR 2.x/3.x and some other meters).
    Absent,
}

/// The meter's clock at the telegram (`0-0:1.0.0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeterTime {
    /// Seconds since 1970-01-01T00:00:00Z.
    Utc(i64),
    /// All zeros: the meter's clock is not set.
    NotSet,
}

/// One decoded telegram. Values a telegram does not carry are `None`.
#[derive(Debug, Clone, PartialEq)]
pub struct Telegram<'a> {
    /// Header after `/`, e.g. `ISk5\2MT382-1000` (may hold control bytes).
    pub header: &'a [u8],
    pub crc: Crc,
    /// `1-3:0.2.8`, e.g. 50 for DSMR 5.0.
    pub dsmr_version: Option<u8>,
    pub time: Option<MeterTime>,
    /// `0-0:96.1.1`, as sent (hex-encoded ASCII on most meters).
    pub equipment_id: Option<&'a [u8]>,
    /// Delivered to the connection, low (`1.8.1`) and normal (`1.8.2`) tariff, and total (`1.8.0`).
    pub import_t1_wh: Option<u64>,
    pub import_t2_wh: Option<u64>,
    pub import_total_wh: Option<u64>,
    /// Fed back, low (`2.8.1`) and normal (`2.8.2`) tariff, and total (`2.8.0`).
    pub export_t1_wh: Option<u64>,
    pub export_t2_wh: Option<u64>,
    pub export_total_wh: Option<u64>,
    /// Actual power delivered (`1.7.0`) and fed back (`2.7.0`).
    pub power_import_w: Option<u32>,
    pub power_export_w: Option<u32>,
    /// Voltage per phase L1..L3 (`32.7.0`, `52.7.0`, `72.7.0`).
    pub voltage_v: [Option<f32>; 3],
    /// Current per phase (`31.7.0`, `51.7.0`, `71.7.0`).
    pub current_a: [Option<f32>; 3],
    /// Number of voltage sags per phase (`32.32.0`, `52.32.0`, `72.32.0`).
    pub sags: [Option<u32>; 3],
    /// Number of voltage swells per phase (`32.36.0`, `52.36.0`, `72.36.0`).
    pub swells: [Option<u32>; 3],
    /// Tariff in force (`0-0:96.14.0`): 1 low, 2 normal.
    pub tariff: Option<u8>,
}

impl Telegram<'_> {
    /// Total delivered: the two tariffs when both are there, else the total register.
    pub fn import_wh(&self) -> Option<u64> {
        match (self.import_t1_wh, self.import_t2_wh) {
            (Some(a), Some(b)) => a.checked_add(b),
            _ => self.import_total_wh,
        }
    }

    /// Total fed back, like [`Telegram::import_wh`].
    pub fn export_wh(&self) -> Option<u64> {
        match (self.export_t1_wh, self.export_t2_wh) {
            (Some(a), Some(b)) => a.checked_add(b),
            _ => self.export_total_wh,
        }
    }

    /// The manufacturer code: the first three characters of the header.
    pub fn manufacturer(&self) -> Option<&str> {
        self.header
            .get(..3)
            .and_then(|m| core::str::from_utf8(m).ok())
    }
}

/// CRC16/ARC: polynomial 0x8005 reflected (0xA001), init 0, no final xor.
pub fn crc16_arc(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in data {
        crc ^= u16::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xA001
            } else {
                crc >> 1
            };
        }
    }
    crc
}

fn find(buf: &[u8], from: usize, byte: u8) -> Option<usize> {
    buf.get(from..)?
        .iter()
        .position(|&b| b == byte)
        .map(|p| p + from)
}

/// Parses the first telegram in `buf`.
pub fn parse(buf: &[u8]) -> Result<Telegram<'_>, P1Error> {
    let start = find(buf, 0, b'/').ok_or(P1Error::NoStart)?;
    let end = find(buf, start, b'!').ok_or(P1Error::NoEnd)?;
    let crc = check_crc(buf, start, end)?;
    let body = buf.get(start + 1..end).ok_or(P1Error::NoEnd)?;
    let mut lines = body.split(|&b| b == b'\n');
    let header = trim(lines.next().unwrap_or(&[]));
    let mut t = Telegram {
        header,
        crc,
        dsmr_version: None,
        time: None,
        equipment_id: None,
        import_t1_wh: None,
        import_t2_wh: None,
        import_total_wh: None,
        export_t1_wh: None,
        export_t2_wh: None,
        export_total_wh: None,
        power_import_w: None,
        power_export_w: None,
        voltage_v: [None; 3],
        current_a: [None; 3],
        sags: [None; 3],
        swells: [None; 3],
        tariff: None,
    };
    for (i, line) in lines.enumerate() {
        let line_no = u16::try_from(i + 2).unwrap_or(u16::MAX);
        apply_line(&mut t, trim(line)).ok_or(P1Error::BadValue { line: line_no })?;
    }
    Ok(t)
}

fn check_crc(buf: &[u8], start: usize, end: usize) -> Result<Crc, P1Error> {
    let after = buf.get(end + 1..).unwrap_or(&[]);
    let digits = after.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        // Nothing but line ends (or nothing) after `!`: a telegram without CRC.
        return match after.first() {
            None => Ok(Crc::Absent),
            Some(b) if b.is_ascii_whitespace() => Ok(Crc::Absent),
            Some(_) => Err(P1Error::MalformedCrc),
        };
    }
    if digits > 4 {
        return Err(P1Error::MalformedCrc);
    }
    let mut sent: u16 = 0;
    for &b in after.get(..digits).unwrap_or(&[]) {
        sent = (sent << 4) | u16::from(hex_val(b).ok_or(P1Error::MalformedCrc)?);
    }
    let computed = crc16_arc(buf.get(start..=end).ok_or(P1Error::NoEnd)?);
    if sent == computed {
        Ok(Crc::Valid(sent))
    } else {
        Err(P1Error::BadCrc { sent, computed })
    }
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if first.is_ascii_whitespace() {
            s = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = s {
        if last.is_ascii_whitespace() {
            s = rest;
        } else {
            break;
        }
    }
    s
}

/// The first `(…)` group of a line's values.
fn first_value(values: &[u8]) -> Option<&[u8]> {
    let open = find(values, 0, b'(')?;
    let close = find(values, open, b')')?;
    values.get(open + 1..close)
}

/// Applies one line; `None` when a known register's value is unreadable.
fn apply_line<'a>(t: &mut Telegram<'a>, line: &'a [u8]) -> Option<()> {
    let Some(open) = find(line, 0, b'(') else {
        return Some(()); // not a data line
    };
    let mut obis = line.get(..open)?;
    // Some meters append the OBIS "F" group: `1-0:1.8.0*255`.
    if let Some(star) = find(obis, 0, b'*') {
        obis = obis.get(..star)?;
    }
    let values = line.get(open..)?;
    let phase = |p: &[u8]| match p {
        b"32" | b"31" => Some(0usize),
        b"52" | b"51" => Some(1),
        b"72" | b"71" => Some(2),
        _ => None,
    };
    match obis {
        b"1-3:0.2.8" => t.dsmr_version = Some(parse_uint(first_value(values)?)?.try_into().ok()?),
        b"0-0:1.0.0" => t.time = Some(parse_time(first_value(values)?)?),
        b"0-0:96.1.1" => t.equipment_id = Some(first_value(values)?),
        b"0-0:96.14.0" => t.tariff = Some(parse_uint(first_value(values)?)?.try_into().ok()?),
        b"1-0:1.8.1" => t.import_t1_wh = Some(energy_wh(first_value(values)?)?),
        b"1-0:1.8.2" => t.import_t2_wh = Some(energy_wh(first_value(values)?)?),
        b"1-0:1.8.0" => t.import_total_wh = Some(energy_wh(first_value(values)?)?),
        b"1-0:2.8.1" => t.export_t1_wh = Some(energy_wh(first_value(values)?)?),
        b"1-0:2.8.2" => t.export_t2_wh = Some(energy_wh(first_value(values)?)?),
        b"1-0:2.8.0" => t.export_total_wh = Some(energy_wh(first_value(values)?)?),
        b"1-0:1.7.0" => t.power_import_w = Some(power_w(first_value(values)?)?),
        b"1-0:2.7.0" => t.power_export_w = Some(power_w(first_value(values)?)?),
        _ => {
            // Per-phase values; anything else is an unknown line and skipped.
            let Some(rest) = obis.strip_prefix(b"1-0:") else {
                return Some(());
            };
            let Some(dot) = find(rest, 0, b'.') else {
                return Some(());
            };
            let (p, kind) = (rest.get(..dot)?, rest.get(dot..)?);
            let Some(i) = phase(p) else { return Some(()) };
            let v = first_value(values)?;
            match (kind, p) {
                (b".7.0", b"32" | b"52" | b"72") => {
                    *t.voltage_v.get_mut(i)? = Some(unit_float(v, b"V")?)
                }
                (b".7.0", b"31" | b"51" | b"71") => {
                    *t.current_a.get_mut(i)? = Some(unit_float(v, b"A")?)
                }
                (b".32.0", b"32" | b"52" | b"72") => {
                    *t.sags.get_mut(i)? = Some(parse_uint(v)?.try_into().ok()?)
                }
                (b".36.0", b"32" | b"52" | b"72") => {
                    *t.swells.get_mut(i)? = Some(parse_uint(v)?.try_into().ok()?)
                }
                _ => {}
            }
        }
    }
    Some(())
}

fn split_unit(v: &[u8]) -> (&[u8], &[u8]) {
    match find(v, 0, b'*') {
        Some(star) => (
            v.get(..star).unwrap_or(&[]),
            v.get(star + 1..).unwrap_or(&[]),
        ),
        None => (v, &[]),
    }
}

fn parse_uint(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 {
        return None;
    }
    s.iter().try_fold(0u64, |acc, &b| {
        let d = b.checked_sub(b'0').filter(|d| *d <= 9)?;
        acc.checked_mul(10)?.checked_add(u64::from(d))
    })
}

/// A decimal `123.4567` scaled by 10^`scale` exactly, rounded half up.
fn decimal_scaled(s: &[u8], scale: u32) -> Option<u64> {
    let (int, frac) = match find(s, 0, b'.') {
        Some(dot) => (s.get(..dot)?, s.get(dot + 1..)?),
        None => (s, &[][..]),
    };
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let mut value = if int.is_empty() { 0 } else { parse_uint(int)? };
    for k in 0..scale as usize {
        let d = match frac.get(k) {
            Some(&b) => u64::from(b.checked_sub(b'0').filter(|d| *d <= 9)?),
            None => 0,
        };
        value = value.checked_mul(10)?.checked_add(d)?;
    }
    let rest = frac.get(scale as usize..).unwrap_or(&[]);
    if !rest.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if rest.first().is_some_and(|&b| b >= b'5') {
        value = value.checked_add(1)?;
    }
    Some(value)
}

/// An energy register in Wh: `kWh` values are scaled exactly, `Wh` taken as is.
fn energy_wh(v: &[u8]) -> Option<u64> {
    let (num, unit) = split_unit(v);
    match unit {
        b"kWh" => decimal_scaled(num, 3),
        b"Wh" => decimal_scaled(num, 0),
        _ => None,
    }
}

/// Power in W from `kW` or `W`.
fn power_w(v: &[u8]) -> Option<u32> {
    let (num, unit) = split_unit(v);
    let w = match unit {
        b"kW" => decimal_scaled(num, 3)?,
        b"W" => decimal_scaled(num, 0)?,
        _ => return None,
    };
    u32::try_from(w).ok()
}

/// A float with the expected unit, e.g. `0230.0*V`. f32 is fine here: these are not registers.
fn unit_float(v: &[u8], expected: &[u8]) -> Option<f32> {
    let (num, unit) = split_unit(v);
    if unit != expected {
        return None;
    }
    let thousandths = decimal_scaled(num, 3)?;
    if thousandths > 10_000_000 {
        return None;
    }
    Some(thousandths as f32 / 1000.0)
}

/// `YYMMDDhhmmssX` with X = `S` (summer, UTC+2) or `W` (winter, UTC+1).
fn parse_time(v: &[u8]) -> Option<MeterTime> {
    let (digits, flag) = (v.get(..12)?, v.get(12..)?);
    if digits.iter().all(|&b| b == b'0') {
        return Some(MeterTime::NotSet);
    }
    let offset_s = match flag {
        b"S" => 7200,
        b"W" => 3600,
        _ => return None,
    };
    let two = |i: usize| -> Option<i64> { parse_uint(digits.get(i..i + 2)?).map(|n| n as i64) };
    let (y, mo, d, h, mi, s) = (2000 + two(0)?, two(2)?, two(4)?, two(6)?, two(8)?, two(10)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let days = days_from_civil(y, mo, d);
    Some(MeterTime::Utc(
        days * 86_400 + h * 3600 + mi * 60 + s - offset_s,
    ))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_of_check_string() {
        // CRC-16/ARC check value of "123456789" is 0xBB3D (the catalogue's reference).
        assert_eq!(crc16_arc(b"123456789"), 0xBB3D);
    }

    #[test]
    fn decimals_scale_exactly() {
        assert_eq!(decimal_scaled(b"000004.426", 3), Some(4426));
        assert_eq!(decimal_scaled(b"00052185.7825309", 3), Some(52_185_783));
        assert_eq!(decimal_scaled(b"1.2344", 3), Some(1234));
        assert_eq!(decimal_scaled(b"12a.3", 3), None);
        assert_eq!(decimal_scaled(b".", 3), None);
    }

    #[test]
    fn civil_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2017, 1, 2), 17_168);
    }
}
