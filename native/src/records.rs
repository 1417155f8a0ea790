//! The two Kafka records the scorer publishes for a tier change, byte for byte what
//! `services/scorer/publisher.py`'s `change_records` builds with orjson (OPT_UTC_Z): the
//! `tierstream.tier.changed` record and the customer's latest-tier record, with their
//! CloudEvents headers. Only for changes without declared features and without scores
//! (`"declared": {}`, `"scores": {}`); whatever this cannot be sure to write exactly as
//! Python does (a local midnight in a DST gap or fold, an instant outside the zone table or
//! Python's datetime range, a span whose float seconds could round differently) gives None,
//! and the caller falls back to Python. tests/unit/test_native_records.py holds the two equal.

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::state::Features;
use crate::zone::{Zone, EPOCH_ORDINAL};

/// `publisher.SOURCE`
const SOURCE: &[u8] = b"tierstream/scorer";
/// `schemas.v1.tiers.TIER_CHANGED` and `CUSTOMER_TIER`
const TIER_CHANGED: &[u8] = b"tierstream.tier.changed";
const CUSTOMER_TIER: &[u8] = b"tierstream.customer.tier";
/// `schemas.v1.binding.CONTENT_TYPE`
const CONTENT_TYPE: (&str, &[u8]) = ("content-type", b"application/json");

const DAY_S: i64 = 86_400;
const DAY_US: i64 = 86_400_000_000;
/// Python's `datetime.min` and `datetime.max` (UTC) in µs since the Unix epoch
const MIN_US: i64 = -62_135_596_800_000_000;
const MAX_US: i64 = 253_402_300_799_999_999;
/// Spans up to 2^53 µs: `timedelta.total_seconds()` is then CPython's one IEEE division
/// of two exactly representable doubles, the same as here.
const EXACT_SPAN_US: i64 = 1 << 53;

/// A tier as the records carry it, its JSON written once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TierInfo {
    id: String,
    rank: i64,
    json: Vec<u8>, // {"id":…,"labels":{"zh":…,"en":…},"rank":…,"high_value":…}
}

impl TierInfo {
    pub fn new(id: &str, label_zh: &str, label_en: &str, rank: i64, high_value: bool) -> TierInfo {
        let mut json = Vec::with_capacity(64 + id.len() + label_zh.len() + label_en.len());
        json.extend_from_slice(b"{\"id\":");
        string(&mut json, id);
        json.extend_from_slice(b",\"labels\":{\"zh\":");
        string(&mut json, label_zh);
        json.extend_from_slice(b",\"en\":");
        string(&mut json, label_en);
        json.extend_from_slice(b"},\"rank\":");
        integer(&mut json, rank);
        json.extend_from_slice(if high_value {
            b",\"high_value\":true}"
        } else {
            b",\"high_value\":false}"
        });
        TierInfo {
            id: id.to_string(),
            rank,
            json,
        }
    }

    /// `rules.placeholder`: a tier known only by its id.
    #[allow(dead_code)] // for the engine's tier lookup
    pub fn placeholder(id: &str) -> TierInfo {
        TierInfo::new(id, id, id, 0, false)
    }

    #[allow(dead_code)] // for the engine's tier lookup
    pub fn id(&self) -> &str {
        &self.id
    }

    #[allow(dead_code)] // for the engine's tier lookup
    pub fn rank(&self) -> i64 {
        self.rank
    }
}

/// `Ruleset.mode`: the change's `threshold_mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Fixed,
    Population,
}

/// R is high when recency_days <= recency_days; F when frequency >= frequency; M when
/// monetary (minor units) >= monetary (`rules.Thresholds`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Thresholds {
    pub recency_days: i64,
    pub frequency: i64,
    pub monetary: i64,
}

/// What a change's records read besides the change: the thresholds and their mode (one
/// standard), and the business zone's offsets (the table `compiled_zone.offsets` gives,
/// the one `Zone::new` takes) for `as_of`.
#[derive(Clone, Debug)]
pub struct RecordContext {
    thresholds: Thresholds,
    thresholds_json: Vec<u8>, // ,"thresholds":{…},"ruleset_version":
    zone: Zone,
}

/// What caused a change (the change's `cause`).
#[derive(Clone, Copy, Debug)]
pub enum Cause<'a> {
    Event { source: &'a str, id: &'a str },
    Clock(&'a str), // the ClockReason
}

/// A standing as the records read it: the tier and since when (µs since the Unix epoch).
#[derive(Clone, Copy, Debug)]
pub struct TierSince<'a> {
    pub tier: &'a TierInfo,
    pub since_us: i64,
}

/// A tier change without declared features and without scores.
#[derive(Clone, Copy, Debug)]
pub struct ChangeView<'a> {
    pub change_id: &'a str,
    pub customer_id: &'a str,
    pub before: Option<TierSince<'a>>,
    pub after: TierSince<'a>,
    pub ruleset_version: &'a str, // the after standing's
    pub features: &'a Features,
    pub cause: Cause<'a>,
}

pub type Headers = Vec<(&'static str, Vec<u8>)>;

/// The two records: both keyed by the customer id (`key`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangeRecords {
    pub key: Vec<u8>,
    pub changed: Vec<u8>,
    pub changed_headers: Headers,
    pub latest: Vec<u8>,
    pub latest_headers: Headers,
}

impl RecordContext {
    pub fn new(thresholds: Thresholds, mode: Mode, offsets: &[(i64, i64)], until: i64) -> Self {
        let mut json = Vec::with_capacity(128);
        json.extend_from_slice(b",\"thresholds\":{\"mode\":");
        json.extend_from_slice(match mode {
            Mode::Fixed => b"\"fixed\"",
            Mode::Population => b"\"population\"",
        });
        json.extend_from_slice(b",\"recency_days\":\"");
        integer(&mut json, thresholds.recency_days);
        json.extend_from_slice(b"\",\"frequency\":\"");
        integer(&mut json, thresholds.frequency);
        json.extend_from_slice(b"\",\"monetary\":\"");
        money(&mut json, thresholds.monetary);
        json.extend_from_slice(b"\"},\"ruleset_version\":");
        RecordContext {
            thresholds,
            thresholds_json: json,
            zone: Zone::new(offsets.to_vec(), until),
        }
    }

    /// `scoring.day_start`: the UTC second the local day `day` (an ordinal) begins, or None
    /// when its midnight is not one local time (a gap or a fold: zoneinfo's `fold=0` choice
    /// is not reproduced) or the table does not cover it. Offsets are under a day (Python's
    /// tzinfo rule), so every instant that reads as this midnight is within a day of it, and
    /// its offset is one in force somewhere in that window; each is tried.
    pub fn day_start(&self, day: i32) -> Option<i64> {
        let local = (day as i64 - EPOCH_ORDINAL) * DAY_S;
        let (low, high) = (local - DAY_S, local + DAY_S);
        let first = self.zone.offset(low)?;
        self.zone.offset(high)?;
        let mut found: Option<i64> = None;
        let candidates = std::iter::once(first).chain(self.zone.offsets_within(low, high));
        for offset in candidates {
            let utc = local - offset;
            if utc > low && utc < high && self.zone.offset(utc) == Some(offset) {
                match found {
                    None => found = Some(utc),
                    Some(u) if u == utc => {}
                    Some(_) => return None, // a fold: two instants read as this midnight
                }
            }
        }
        found // None: a gap
    }

    /// `rules.levels`: (recency, frequency, monetary) high?, and the segment.
    fn levels(&self, f: &Features) -> (bool, bool, bool, &'static str) {
        let t = &self.thresholds;
        let r = matches!(f.recency_days, Some(days) if days <= t.recency_days);
        let fr = f.frequency >= t.frequency;
        let m = f.monetary >= t.monetary;
        let segment = match (r, fr, m) {
            (true, true, true) => "important_value",
            (true, false, true) => "important_develop",
            (false, true, true) => "important_retain",
            (false, false, true) => "important_winback",
            (true, true, false) => "general_value",
            (true, false, false) => "general_develop",
            (false, true, false) => "general_retain",
            (false, false, false) => "general_winback",
        };
        (r, fr, m, segment)
    }
}

/// `publisher.change_records(change, zone)` for a change without declared features and
/// scores, or None when the records might not be byte-identical to Python's.
pub fn change_records(ctx: &RecordContext, change: &ChangeView<'_>) -> Option<ChangeRecords> {
    let after = change.after;
    let f = change.features;
    let since = Instant::of(after.since_us)?;
    let as_of = Instant::of(ctx.day_start(f.day)?.checked_mul(1_000_000)?)?;
    let previous = match change.before {
        None => None,
        Some(before) => {
            Instant::of(before.since_us)?;
            Some(total_seconds(after.since_us - before.since_us)?)
        }
    };
    let mut out = Vec::with_capacity(
        900 + 2 * after.tier.json.len()
            + change.before.map_or(0, |b| b.tier.json.len())
            + 2 * change.customer_id.len(),
    );
    out.extend_from_slice(b"{\"change_id\":");
    string(&mut out, change.change_id);
    out.extend_from_slice(b",\"customer_id\":");
    string(&mut out, change.customer_id);
    out.extend_from_slice(b",\"from_tier\":");
    match change.before {
        None => out.extend_from_slice(b"null"),
        Some(b) => out.extend_from_slice(&b.tier.json),
    }
    out.extend_from_slice(b",\"to_tier\":");
    out.extend_from_slice(&after.tier.json);
    out.extend_from_slice(b",\"direction\":");
    out.extend_from_slice(match change.before {
        None => b"\"initial\"",
        Some(b) if after.tier.rank > b.tier.rank => b"\"up\"",
        Some(b) if after.tier.rank < b.tier.rank => b"\"down\"",
        Some(_) => b"\"lateral\"",
    });
    out.extend_from_slice(b",\"changed_at\":");
    since.json(&mut out);
    out.extend_from_slice(b",\"previous_tier_seconds\":");
    match previous {
        None => out.extend_from_slice(b"null"),
        Some(s) => integer(&mut out, s),
    }
    out.extend_from_slice(b",\"features\":{\"as_of\":");
    as_of.json(&mut out);
    out.extend_from_slice(b",\"recency_days\":");
    match f.recency_days {
        None => out.extend_from_slice(b"null"),
        Some(d) => integer(&mut out, d),
    }
    out.extend_from_slice(b",\"frequency\":");
    integer(&mut out, f.frequency);
    out.extend_from_slice(b",\"monetary\":\"");
    money(&mut out, f.monetary);
    out.extend_from_slice(b"\",\"frequency_90d\":");
    integer(&mut out, f.frequency_90d);
    out.extend_from_slice(b",\"monetary_90d\":\"");
    money(&mut out, f.monetary_90d);
    out.extend_from_slice(b"\",\"interactions_30d\":");
    integer(&mut out, f.interactions_30d);
    out.extend_from_slice(b",\"tenure_days\":");
    integer(&mut out, f.tenure_days);
    let (r, fr, m, segment) = ctx.levels(f);
    out.extend_from_slice(b",\"declared\":{}},\"levels\":{\"recency\":");
    out.extend_from_slice(level(r));
    out.extend_from_slice(b",\"frequency\":");
    out.extend_from_slice(level(fr));
    out.extend_from_slice(b",\"monetary\":");
    out.extend_from_slice(level(m));
    out.extend_from_slice(b",\"segment\":\"");
    out.extend_from_slice(segment.as_bytes());
    out.extend_from_slice(b"\"}");
    out.extend_from_slice(&ctx.thresholds_json);
    string(&mut out, change.ruleset_version);
    out.extend_from_slice(b",\"matched_rule\":");
    string(&mut out, &after.tier.id);
    match change.cause {
        Cause::Event { source, id } => {
            out.extend_from_slice(b",\"cause\":{\"kind\":\"event\",\"event_id\":");
            string(&mut out, id);
            out.extend_from_slice(b",\"event_source\":");
            string(&mut out, source);
        }
        Cause::Clock(reason) => {
            out.extend_from_slice(b",\"cause\":{\"kind\":\"clock\",\"reason\":");
            string(&mut out, reason);
        }
    }
    out.extend_from_slice(b"},\"scores\":{}}");

    let mut latest = Vec::with_capacity(
        160 + after.tier.json.len() + change.customer_id.len() + change.ruleset_version.len(),
    );
    latest.extend_from_slice(b"{\"customer_id\":");
    string(&mut latest, change.customer_id);
    latest.extend_from_slice(b",\"tier\":");
    latest.extend_from_slice(&after.tier.json);
    latest.extend_from_slice(b",\"since\":");
    since.json(&mut latest);
    latest.extend_from_slice(b",\"ruleset_version\":");
    string(&mut latest, change.ruleset_version);
    latest.extend_from_slice(b",\"change_id\":");
    string(&mut latest, change.change_id);
    latest.push(b'}');

    let mut time = Vec::with_capacity(32);
    since.isoformat(&mut time);
    let changed_headers = headers(TIER_CHANGED, change, time.clone());
    let latest_headers = headers(CUSTOMER_TIER, change, time);
    Some(ChangeRecords {
        key: change.customer_id.as_bytes().to_vec(),
        changed: out,
        changed_headers,
        latest,
        latest_headers,
    })
}

/// The names in `headers` whose values do not depend on the change (one per record kind).
pub const CONSTANT_HEADERS: [&str; 4] = ["ce_specversion", "ce_source", "ce_type", "content-type"];

/// `publisher._headers`: what `binding.attribute_headers` gives for the attributes.
fn headers(kind: &[u8], change: &ChangeView<'_>, time: Vec<u8>) -> Headers {
    vec![
        ("ce_specversion", b"1.0".to_vec()),
        ("ce_id", change.change_id.as_bytes().to_vec()),
        ("ce_source", SOURCE.to_vec()),
        ("ce_type", kind.to_vec()),
        ("ce_subject", change.customer_id.as_bytes().to_vec()),
        ("ce_time", time),
        (CONTENT_TYPE.0, CONTENT_TYPE.1.to_vec()),
    ]
}

fn level(high: bool) -> &'static [u8] {
    if high {
        b"\"high\""
    } else {
        b"\"low\""
    }
}

/// `int(timedelta(microseconds=us).total_seconds())`, for spans where the float division
/// is provably the same as CPython's (up to 2^53 µs, about 285 years).
fn total_seconds(us: i64) -> Option<i64> {
    if !(-EXACT_SPAN_US..=EXACT_SPAN_US).contains(&us) {
        return None;
    }
    Some(((us as f64) / 1e6).trunc() as i64)
}

/// orjson's string: UTF-8 as is; `"`, `\` and the control characters below 0x20 escaped
/// (\b \t \n \f \r, the others \u00xx in lower-case hex); DEL, U+2028 and U+2029 as is.
fn string(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b >= 0x20 && b != b'"' && b != b'\\' {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x09 => out.extend_from_slice(b"\\t"),
            0x0a => out.extend_from_slice(b"\\n"),
            0x0c => out.extend_from_slice(b"\\f"),
            0x0d => out.extend_from_slice(b"\\r"),
            _ => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 15) as usize],
            ]),
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

fn unsigned(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// An integer as orjson and `str(int)` write it.
fn integer(out: &mut Vec<u8>, n: i64) {
    if n < 0 {
        out.push(b'-');
    }
    unsigned(out, n.unsigned_abs());
}

/// `publisher._money`: `str(Decimal(minor) / 100)`. The quotient of an integer below 2^63
/// by 100 is exact in the default context (19 digits < 28), with the ideal exponent 0 when
/// the cents are 0, else -1 or -2 (trailing zeros dropped down to it); never in exponent
/// notation (the exponent is at most 0 and the adjusted exponent at least -2).
fn money(out: &mut Vec<u8>, minor: i64) {
    if minor < 0 {
        out.push(b'-');
    }
    let abs = minor.unsigned_abs();
    unsigned(out, abs / 100);
    let cents = (abs % 100) as u8;
    if cents != 0 {
        out.push(b'.');
        out.push(b'0' + cents / 10);
        if !cents.is_multiple_of(10) {
            out.push(b'0' + cents % 10);
        }
    }
}

/// An aware UTC datetime within Python's range.
#[derive(Clone, Copy, Debug)]
struct Instant {
    year: i64,
    month: u8,
    day: u8,
    hour: u8,
    minute: u8,
    second: u8,
    micro: u32,
}

impl Instant {
    fn of(us: i64) -> Option<Instant> {
        if !(MIN_US..=MAX_US).contains(&us) {
            return None;
        }
        let days = us.div_euclid(DAY_US);
        let rest = us.rem_euclid(DAY_US);
        let (year, month, day) = civil(days);
        let seconds = rest / 1_000_000;
        Some(Instant {
            year,
            month,
            day,
            hour: (seconds / 3600) as u8,
            minute: (seconds / 60 % 60) as u8,
            second: (seconds % 60) as u8,
            micro: (rest % 1_000_000) as u32,
        })
    }

    /// YYYY-MM-DDTHH:MM:SS[.ffffff], the fraction only when the µs are not 0 (orjson and
    /// `isoformat` agree on this much).
    fn base(&self, out: &mut Vec<u8>) {
        let y = self.year as u32; // 1..=9999
        out.extend_from_slice(&[
            b'0' + (y / 1000) as u8,
            b'0' + (y / 100 % 10) as u8,
            b'0' + (y / 10 % 10) as u8,
            b'0' + (y % 10) as u8,
            b'-',
            b'0' + self.month / 10,
            b'0' + self.month % 10,
            b'-',
            b'0' + self.day / 10,
            b'0' + self.day % 10,
            b'T',
            b'0' + self.hour / 10,
            b'0' + self.hour % 10,
            b':',
            b'0' + self.minute / 10,
            b'0' + self.minute % 10,
            b':',
            b'0' + self.second / 10,
            b'0' + self.second % 10,
        ]);
        if self.micro != 0 {
            out.push(b'.');
            let mut m = self.micro;
            let mut digits = [0u8; 6];
            for d in digits.iter_mut().rev() {
                *d = b'0' + (m % 10) as u8;
                m /= 10;
            }
            out.extend_from_slice(&digits);
        }
    }

    /// orjson with OPT_UTC_Z: a JSON string ending in Z.
    fn json(&self, out: &mut Vec<u8>) {
        out.push(b'"');
        self.base(out);
        out.extend_from_slice(b"Z\"");
    }

    /// `datetime.isoformat()` of a UTC datetime.
    fn isoformat(&self, out: &mut Vec<u8>) {
        self.base(out);
        out.extend_from_slice(b"+00:00");
    }
}

/// (year, month, day) of a day counted from 1970-01-01 (the proleptic Gregorian calendar,
/// as Python's `date`): Howard Hinnant's `civil_from_days`.
fn civil(days: i64) -> (i64, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

type TierArg = (String, String, String, i64, bool);
type FeatureArg = (i32, Option<i64>, i64, i64, i64, i64, i64, i64);

#[derive(FromPyObject)]
pub enum CauseArg {
    Event(String, String), // (source, id)
    Clock(String),         // the reason
}

type PyHeaders<'py> = Vec<(&'static str, Bound<'py, PyBytes>)>;
type PyRecords<'py> = (
    Bound<'py, PyBytes>,
    Bound<'py, PyBytes>,
    Bound<'py, PyBytes>,
    PyHeaders<'py>,
    PyHeaders<'py>,
);

fn py_headers<'py>(py: Python<'py>, headers: &Headers) -> PyHeaders<'py> {
    headers
        .iter()
        .map(|(name, value)| (*name, PyBytes::new(py, value)))
        .collect()
}

/// For tests and measurement: `change_records` on plain values; tiers are (id, label_zh,
/// label_en, rank, high_value), standings (tier, since µs), features the engine's tuple,
/// cause (source, id) of an event or a clock reason, mode "fixed" or "population",
/// offsets/until as `compiled_zone.offsets` gives them. Returns (key, changed value,
/// latest value, changed headers, latest headers), or None where Python must write them;
/// builds them `repeat` times (timing the Rust work alone).
#[pyfunction]
#[pyo3(signature = (*, change_id, customer_id, before, after, version, features, cause, thresholds, mode, offsets, until, repeat=1))]
#[allow(clippy::too_many_arguments)]
pub fn change_records_for_test<'py>(
    py: Python<'py>,
    change_id: &str,
    customer_id: &str,
    before: Option<(TierArg, i64)>,
    after: (TierArg, i64),
    version: &str,
    features: FeatureArg,
    cause: CauseArg,
    thresholds: (i64, i64, i64),
    mode: &str,
    offsets: Vec<(i64, i64)>,
    until: i64,
    repeat: usize,
) -> PyResult<Option<PyRecords<'py>>> {
    let mode = match mode {
        "fixed" => Mode::Fixed,
        "population" => Mode::Population,
        _ => {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "mode {mode:?}: neither fixed nor population"
            )))
        }
    };
    let ctx = RecordContext::new(
        Thresholds {
            recency_days: thresholds.0,
            frequency: thresholds.1,
            monetary: thresholds.2,
        },
        mode,
        &offsets,
        until,
    );
    let tier = |t: &TierArg| TierInfo::new(&t.0, &t.1, &t.2, t.3, t.4);
    let before_tier = before.as_ref().map(|(t, _)| tier(t));
    let after_tier = tier(&after.0);
    let f = Features {
        day: features.0,
        recency_days: features.1,
        frequency: features.2,
        monetary: features.3,
        frequency_90d: features.4,
        monetary_90d: features.5,
        interactions_30d: features.6,
        tenure_days: features.7,
    };
    let view = ChangeView {
        change_id,
        customer_id,
        before: before_tier
            .as_ref()
            .zip(before.as_ref())
            .map(|(t, b)| TierSince {
                tier: t,
                since_us: b.1,
            }),
        after: TierSince {
            tier: &after_tier,
            since_us: after.1,
        },
        ruleset_version: version,
        features: &f,
        cause: match &cause {
            CauseArg::Event(source, id) => Cause::Event { source, id },
            CauseArg::Clock(reason) => Cause::Clock(reason),
        },
    };
    let mut built = None;
    for _ in 0..repeat.max(1) {
        built = std::hint::black_box(change_records(&ctx, std::hint::black_box(&view)));
    }
    Ok(built.map(|r| {
        (
            PyBytes::new(py, &r.key),
            PyBytes::new(py, &r.changed),
            PyBytes::new(py, &r.latest),
            py_headers(py, &r.changed_headers),
            py_headers(py, &r.latest_headers),
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(f: impl Fn(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        f(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn money_as_python_decimal() {
        for (minor, expected) in [
            (0, "0"),
            (5, "0.05"),
            (150, "1.5"),
            (100, "1"),
            (12345, "123.45"),
            (-5, "-0.05"),
            (-100, "-1"),
            (i64::MAX, "92233720368547758.07"),
            (i64::MIN, "-92233720368547758.08"),
        ] {
            assert_eq!(text(|o| money(o, minor)), expected);
        }
    }

    #[test]
    fn instants() {
        let i = Instant::of(MIN_US).unwrap();
        assert_eq!(text(|o| i.json(o)), "\"0001-01-01T00:00:00Z\"");
        let i = Instant::of(MAX_US).unwrap();
        assert_eq!(text(|o| i.isoformat(o)), "9999-12-31T23:59:59.999999+00:00");
        assert!(Instant::of(MIN_US - 1).is_none() && Instant::of(MAX_US + 1).is_none());
    }
}
