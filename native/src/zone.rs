//! The business time zone as a table of UTC offsets, built by Python from its `ZoneInfo`
//! (services/scorer/native.py), so that a local day here is the one Python's
//! `local_day` gives: the same tz database, no second copy of it.

/// Python's `date(1970, 1, 1).toordinal()`.
pub const EPOCH_ORDINAL: i64 = 719_163;
const DAY_US: i64 = 86_400_000_000;

#[derive(Clone, Debug)]
pub struct Zone {
    /// (first UTC second, offset in seconds), sorted; instants before the first or after
    /// `until` are outside the table (the caller falls back to Python)
    changes: Vec<(i64, i64)>,
    until: i64,
}

impl Zone {
    pub fn new(mut changes: Vec<(i64, i64)>, until: i64) -> Zone {
        changes.sort_unstable();
        Zone { changes, until }
    }

    /// The UTC offset in seconds at a UTC instant (seconds), or None outside the table.
    pub fn offset(&self, utc_s: i64) -> Option<i64> {
        if utc_s >= self.until {
            return None;
        }
        let i = self.changes.partition_point(|&(start, _)| start <= utc_s);
        if i == 0 {
            return None;
        }
        Some(self.changes[i - 1].1)
    }

    /// The offsets that begin in (low, high]: the only ones besides the offset at `low` in
    /// force anywhere in that span.
    pub fn offsets_within(&self, low: i64, high: i64) -> impl Iterator<Item = i64> + '_ {
        let from = self.changes.partition_point(|&(start, _)| start <= low);
        let to = self.changes.partition_point(|&(start, _)| start <= high);
        self.changes[from..to].iter().map(|&(_, offset)| offset)
    }

    /// The local day ordinal of a UTC instant in µs since the epoch.
    pub fn local_day(&self, utc_us: i64) -> Option<i32> {
        let offset = self.offset(utc_us.div_euclid(1_000_000))?;
        let local = utc_us + offset * 1_000_000;
        Some((local.div_euclid(DAY_US) + EPOCH_ORDINAL) as i32)
    }
}
