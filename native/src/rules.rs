//! The tier decision (`services/scorer/core/scoring.py`'s `judge` and `due_from`) for
//! rulesets whose tier is a function of the built-in features: conditions stay in CEL,
//! evaluated by Python (`decide`) once per distinct memo key, exactly as the Python core
//! memoizes them (`rules.evaluate`: the values of the features the ruleset reads, and the
//! R/F/M levels it reads). Stability (SPEC §10) asks Python (`hold`) only when a customer's
//! candidate tier differs from their tier.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use pyo3::prelude::*;

use crate::state::{Features, Snapshot};

/// FxHash (rustc's): the memo's keys are a few small integers.
#[derive(Default)]
pub struct Fx(u64);

impl Hasher for Fx {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(b as u64);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_i64(&mut self, v: i64) {
        self.write_u64(v as u64);
    }
    fn write_usize(&mut self, v: usize) {
        self.write_u64(v as u64);
    }
}

pub type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<Fx>>;

/// The built-in numbers, as `rules.NUMBERS` orders them.
pub const NUMBERS: [&str; 7] = [
    "recency_days",
    "frequency",
    "monetary",
    "frequency_90d",
    "monetary_90d",
    "interactions_30d",
    "tenure_days",
];
const NONE: i64 = i64::MIN;
const MEMO_SIZE: usize = 100_000;

fn number(f: &Features, code: u8) -> i64 {
    match code {
        0 => f.recency_days.unwrap_or(NONE),
        1 => f.frequency,
        2 => f.monetary,
        3 => f.frequency_90d,
        4 => f.monetary_90d,
        5 => f.interactions_30d,
        _ => f.tenure_days,
    }
}

pub struct Rules {
    pub version: String,
    pub tiers: Vec<String>, // ids, in the ruleset's order
    numbers: Vec<u8>,       // codes into NUMBERS: the features the memo key holds
    levels: bool,           // whether a condition reads segment, r, f or m
    pub recency_days: i64,
    frequency: i64,
    monetary: i64,
    decide: PyObject,
    hold: Option<PyObject>, // stability: None when the ruleset has none
    pub min_days_in_tier: i32,
    daily: bool,
    recency_edges: Vec<i32>,
    tenure_edges: Vec<i32>,
    memo: FxMap<[i64; 8], i32>,
}

impl Rules {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        version: String,
        tiers: Vec<String>,
        numbers: &[String],
        levels: bool,
        thresholds: (i64, i64, i64),
        decide: PyObject,
        hold: Option<PyObject>,
        min_days_in_tier: i32,
        daily: bool,
        recency_edges: Vec<i32>,
        tenure_edges: Vec<i32>,
    ) -> PyResult<Rules> {
        let mut codes = Vec::new();
        for name in numbers {
            let code = NUMBERS.iter().position(|n| n == name).ok_or_else(|| {
                pyo3::exceptions::PyValueError::new_err(format!("unknown feature {name:?}"))
            })?;
            codes.push(code as u8);
        }
        Ok(Rules {
            version,
            tiers,
            numbers: codes,
            levels,
            recency_days: thresholds.0,
            frequency: thresholds.1,
            monetary: thresholds.2,
            decide,
            hold,
            min_days_in_tier,
            daily,
            recency_edges,
            tenure_edges,
            memo: FxMap::default(),
        })
    }

    /// `rules.levels` as three bits: R, F, M high.
    fn level_bits(&self, f: &Features) -> i64 {
        let r = matches!(f.recency_days, Some(d) if d <= self.recency_days) as i64;
        let fr = (f.frequency >= self.frequency) as i64;
        let m = (f.monetary >= self.monetary) as i64;
        (r << 2) | (fr << 1) | m
    }

    /// The index of the first tier whose condition holds (`rules.evaluate`).
    pub fn candidate(&mut self, py: Python<'_>, f: &Features) -> PyResult<Option<usize>> {
        let mut key = [0i64; 8];
        for (i, &code) in self.numbers.iter().enumerate() {
            key[i] = number(f, code);
        }
        if self.levels {
            key[7] = self.level_bits(f);
        }
        let found = match self.memo.get(&key) {
            Some(&i) => i,
            None => {
                let i: i32 = self.decide.call1(py, (f.row(),))?.extract(py)?;
                if self.memo.len() >= MEMO_SIZE {
                    self.memo.clear();
                }
                self.memo.insert(key, i);
                i
            }
        };
        Ok(usize::try_from(found).ok())
    }

    /// Whether stability keeps a customer in `tier` (since `since_us`) instead of moving to
    /// `candidate` (`scoring.held`).
    pub fn holds(
        &self,
        py: Python<'_>,
        f: &Features,
        tier: &str,
        since_us: i64,
        candidate: usize,
    ) -> PyResult<bool> {
        match &self.hold {
            None => Ok(false),
            Some(hold) => hold
                .call1(py, (f.row(), tier, since_us, candidate))?
                .extract(py),
        }
    }

    pub fn has_stability(&self) -> bool {
        self.hold.is_some()
    }

    /// `scoring.due_from`: the first day after `today` on which time alone could change the
    /// tier, from the built-in features.
    pub fn due_from(&self, snap: &Snapshot, today: i32) -> i32 {
        if self.daily {
            return today + 1;
        }
        let mut due = snap.stable_until;
        if let Some(last) = snap.last_purchase {
            let crossing = last as i64 + self.recency_days + 1;
            if (today as i64) < crossing && crossing < due as i64 {
                due = crossing as i32;
            }
        }
        for (start, edges) in [
            (snap.last_purchase, &self.recency_edges),
            (Some(snap.first_day), &self.tenure_edges),
        ] {
            let Some(start) = start else { continue };
            for &edge in edges {
                let day = start + edge;
                if today < day && day < due {
                    due = day;
                }
            }
        }
        due
    }
}
