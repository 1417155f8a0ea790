//! Per-customer RFM state at day granularity: `services/scorer/core/state.py` and
//! `snapshot.py`, the same arithmetic on plain Rust values (no object per day or event).
//! Days are local day ordinals; money in minor units; an event on day d is inside a W-day
//! window at day t when t - W < d <= t.

use crate::fact::{Fact, Kind, Profile};

#[derive(Clone, Copy, Debug)]
pub struct Windows {
    pub main: i32,
    pub short: i32,
    pub interactions: i32,
    pub history: i32,
}

impl Windows {
    pub fn retained(&self) -> i32 {
        self.main.max(self.short).max(self.interactions) + self.history
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Day {
    pub purchases: i64,
    pub purchased: i64,
    pub refunded: i64,
    pub interactions: i64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub frequency: i64,
    pub monetary: i64,
    pub frequency_short: i64,
    pub monetary_short: i64,
    pub interactions: i64,
}

/// (matching events, their total, least and greatest amount) on one day of a stream
pub type Aggregates = (i64, i64, i64, i64);

#[derive(Clone, Debug, PartialEq)]
pub struct Track {
    pub epoch: i64,
    pub since: Option<i32>,
    pub days: Vec<(i32, Aggregates)>, // sorted by day
    pub dropped: Option<i32>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct State {
    pub first_day: i32,
    pub anchor: i32,
    pub days: Vec<(i32, Day)>, // sorted by day; only days > anchor - retained
    pub totals: Totals,        // at `anchor`
    pub last_purchase: Option<i32>,
    pub last_purchase_dropped: Option<i32>,
    pub profile: Option<Box<Profile>>,
    pub tracks: Vec<(String, Track)>, // sorted by key
}

/// SPEC §4's features at `day`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Features {
    pub day: i32,
    pub recency_days: Option<i64>,
    pub frequency: i64,
    pub monetary: i64,
    pub frequency_90d: i64,
    pub monetary_90d: i64,
    pub interactions_30d: i64,
    pub tenure_days: i64,
}

/// Features as Python's `Features` takes them positionally (the first eight fields).
pub type FeatureRow = (i32, Option<i64>, i64, i64, i64, i64, i64, i64);

impl Features {
    pub fn row(&self) -> FeatureRow {
        (
            self.day,
            self.recency_days,
            self.frequency,
            self.monetary,
            self.frequency_90d,
            self.monetary_90d,
            self.interactions_30d,
            self.tenure_days,
        )
    }
}

/// `snapshot.py`'s Snapshot: the features' parts at `day`, good until `stable_until`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub day: i32,
    pub stable_until: i32,
    pub first_day: i32,
    pub last_purchase: Option<i32>,
    pub totals: Totals,
}

impl Snapshot {
    /// `Snapshot.features`: the features at `today`; only meaningful while the snapshot
    /// covers `today` (day <= today < stable_until).
    pub fn features(&self, today: i32) -> Features {
        Features {
            day: today,
            recency_days: self.last_purchase.map(|d| (today - d) as i64),
            frequency: self.totals.frequency,
            monetary: self.totals.monetary,
            frequency_90d: self.totals.frequency_short,
            monetary_90d: self.totals.monetary_short,
            interactions_30d: self.totals.interactions,
            tenure_days: (today - self.first_day) as i64,
        }
    }
}

/// Python's `date.max.toordinal()`.
pub const FOREVER: i32 = 3_652_059;

fn latest(a: Option<i32>, b: Option<i32>) -> Option<i32> {
    match (a, b) {
        (None, b) => b,
        (a, None) => a,
        (Some(x), Some(y)) => Some(x.max(y)),
    }
}

impl Day {
    fn plus(mut self, fact: &Fact) -> Day {
        match fact.kind {
            Kind::Purchase => {
                self.purchases += 1;
                self.purchased += fact.amount;
            }
            Kind::Refund => self.refunded += fact.amount,
            Kind::Interaction => self.interactions += 1,
            Kind::Profile => {}
        }
        self
    }
}

impl State {
    fn new(day: i32) -> State {
        State {
            first_day: day,
            anchor: day,
            days: Vec::new(),
            totals: Totals::default(),
            last_purchase: None,
            last_purchase_dropped: None,
            profile: None,
            tracks: Vec::new(),
        }
    }

    /// The state after one more fact (`state.apply`), in place.
    pub fn apply(state: Option<State>, fact: &Fact, windows: &Windows) -> State {
        let mut state = match state {
            None => State::new(fact.day),
            Some(mut s) => {
                if fact.day > s.anchor {
                    s.advance(fact.day, windows);
                }
                s
            }
        };
        if let Some(profile) = &fact.profile {
            let newer = match &state.profile {
                None => true,
                Some(current) => profile.later_than(current),
            };
            if newer {
                state.profile = Some(profile.clone());
            }
        }
        let is_purchase = fact.kind == Kind::Purchase;
        state.first_day = state.first_day.min(fact.day);
        if is_purchase {
            state.last_purchase = latest(state.last_purchase, Some(fact.day));
        }
        if fact.day <= state.anchor - windows.retained() {
            if is_purchase {
                state.last_purchase_dropped = latest(state.last_purchase_dropped, Some(fact.day));
            }
            return state;
        }
        match state.days.binary_search_by_key(&fact.day, |&(d, _)| d) {
            Ok(i) => state.days[i].1 = state.days[i].1.plus(fact),
            Err(i) => state.days.insert(i, (fact.day, Day::default().plus(fact))),
        }
        add(&mut state.totals, state.anchor - fact.day, fact, windows);
        state
    }

    /// Moves the anchor forward to `today` (`state.advance`).
    pub fn advance(&mut self, today: i32, windows: &Windows) {
        if today <= self.anchor {
            return;
        }
        let horizon = today - windows.retained();
        let cut = self.days.partition_point(|&(d, _)| d <= horizon);
        let dropped = self.days[..cut]
            .iter()
            .filter(|(_, c)| c.purchases != 0)
            .map(|&(d, _)| d)
            .max();
        self.days.drain(..cut);
        self.anchor = today;
        self.totals = totals_at(&self.days, today, windows);
        self.last_purchase_dropped = latest(self.last_purchase_dropped, dropped);
        for (_, track) in self.tracks.iter_mut() {
            let cut = track.days.partition_point(|&(d, _)| d <= horizon);
            if cut > 0 {
                let old = track.days[cut - 1].0;
                track.days.drain(..cut);
                track.dropped = latest(track.dropped, Some(old));
            }
        }
    }

    /// The features at `today`, or None when `today` is outside what the state can answer
    /// (before the first day, or more than `history` days before the anchor).
    pub fn features(&self, today: i32, windows: &Windows) -> Option<Features> {
        if today < self.first_day || today < self.anchor - windows.history {
            return None;
        }
        let (totals, last_purchase) = if today == self.anchor {
            (self.totals, self.last_purchase)
        } else if today > self.anchor {
            (totals_at(&self.days, today, windows), self.last_purchase)
        } else {
            let retained = self
                .days
                .iter()
                .filter(|(d, c)| *d <= today && c.purchases != 0)
                .map(|&(d, _)| d)
                .max();
            (
                totals_at(&self.days, today, windows),
                latest(self.last_purchase_dropped, retained),
            )
        };
        Some(Features {
            day: today,
            recency_days: last_purchase.map(|d| (today - d) as i64),
            frequency: totals.frequency,
            monetary: totals.monetary,
            frequency_90d: totals.frequency_short,
            monetary_90d: totals.monetary_short,
            interactions_30d: totals.interactions,
            tenure_days: (today - self.first_day) as i64,
        })
    }

    /// `snapshot.of_state` at `today` (the later of it and the anchor).
    pub fn snapshot(&self, today: i32, windows: &Windows) -> Snapshot {
        of_rows(
            self.first_day,
            self.anchor,
            self.last_purchase,
            &self.days,
            today,
            windows,
        )
    }
}

fn add(totals: &mut Totals, age: i32, fact: &Fact, windows: &Windows) {
    match fact.kind {
        Kind::Interaction => {
            if age < windows.interactions {
                totals.interactions += 1;
            }
        }
        Kind::Purchase | Kind::Refund => {
            let (count, money) = if fact.kind == Kind::Purchase {
                (1, fact.amount)
            } else {
                (0, -fact.amount)
            };
            if age < windows.main {
                totals.frequency += count;
                totals.monetary += money;
            }
            if age < windows.short {
                totals.frequency_short += count;
                totals.monetary_short += money;
            }
        }
        Kind::Profile => {}
    }
}

/// The window sums at `today` over the given days (days after `today` do not count).
pub fn totals_at(days: &[(i32, Day)], today: i32, windows: &Windows) -> Totals {
    let mut t = Totals::default();
    for &(day, c) in days {
        let age = today - day;
        if age < 0 {
            continue;
        }
        if age < windows.main {
            t.frequency += c.purchases;
            t.monetary += c.purchased - c.refunded;
        }
        if age < windows.short {
            t.frequency_short += c.purchases;
            t.monetary_short += c.purchased - c.refunded;
        }
        if age < windows.interactions {
            t.interactions += c.interactions;
        }
    }
    t
}

/// `snapshot.of_rows`: the snapshot from the stored layout, in one pass.
pub fn of_rows(
    first_day: i32,
    anchor: i32,
    last_purchase: Option<i32>,
    days: &[(i32, Day)],
    today: i32,
    windows: &Windows,
) -> Snapshot {
    let today = today.max(anchor);
    let mut t = Totals::default();
    let mut until = FOREVER;
    for &(day, c) in days {
        if c.purchases != 0 || c.refunded != 0 {
            let net = c.purchased - c.refunded;
            if today < day + windows.short {
                t.frequency_short += c.purchases;
                t.monetary_short += net;
                until = until.min(day + windows.short);
            }
            if today < day + windows.main {
                t.frequency += c.purchases;
                t.monetary += net;
                until = until.min(day + windows.main);
            }
        }
        if c.interactions != 0 && today < day + windows.interactions {
            t.interactions += c.interactions;
            until = until.min(day + windows.interactions);
        }
    }
    Snapshot {
        day: today,
        stable_until: until,
        first_day,
        last_purchase,
        totals: t,
    }
}
