//! One transaction's work on the compiled path: the records of a batch decoded, deduplicated
//! against what PostgreSQL answers, the customers loaded, every event applied and judged in
//! partition order (with the event clock's day-boundary sweeps in memory), and what to save
//! and publish handed back as columns and tuples. The shell (services/scorer/compiled.py)
//! does the I/O around it; `services/scorer/workset.py` with the Python core is the
//! reference it is held equal to (tests/unit/test_native_engine.py).

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};
use sha2::{Digest, Sha256};

use crate::codec;
use crate::event::{self, Money};
use crate::fact::{Attr, Attributes, Fact, Kind, Profile};
use crate::records;
use crate::rules::{FxMap, Rules};
use crate::state::{FeatureRow, Features, Snapshot, State, Totals, Windows};
use crate::zone::Zone;

#[derive(Clone, Debug, PartialEq)]
struct Standing {
    tier: String,
    since_us: i64,
    version: String,
}

struct Entry {
    partition: i32,
    state: State,
    encoded: Option<Vec<u8>>, // the stored bytes while the state is unchanged
    standing: Option<Standing>,
    change_id: Option<String>,
    due: Option<i32>,
    day: i32,
    dirty: bool,
    saved: Option<(i32, Option<String>)>, // its row's partition and tier; None: no row yet
}

struct Event {
    partition: i32,
    source: String,
    id: String,
    subject: String,
    time_us: i64,
    digest: [u8; 32],
    fact: Fact,
}

enum Cause {
    Event(String, String),
    Clock(&'static str, String),
}

struct Change {
    change_id: String,
    customer_id: String,
    before: Option<Standing>,
    after: Standing,
    features: Features,
    cause: Cause,
}

#[pyclass(module = "tierstream_native")]
pub struct Engine {
    windows: Windows,
    zone: Zone,
    money: Money,
    rules: Rules,
    // the tier-change records, built here when the ruleset has no scores (else in Python)
    records: Option<records::RecordContext>,
    tier_infos: Vec<records::TierInfo>, // the ruleset's tiers, in order
    older: FxMap<String, FxMap<String, records::TierInfo>>, // other versions' tiers
    // the transaction's work
    events: Vec<Option<Event>>, // by record index; None: poison, a repeat, or not yet decoded
    identities: Vec<usize>,     // records whose (source, id) comes first in the batch
    repeats: Vec<usize>,        // later records with the same (source, id)
    fresh: Vec<usize>,          // records to apply, in order
    entries: FxMap<String, Entry>,
    changes: Vec<(i32, Change)>, // with the customer's partition
    counts: FxMap<(i32, String), i64>,
}

fn now_day(zone: &Zone, us: i64) -> PyResult<i32> {
    zone.local_day(us).ok_or_else(|| {
        pyo3::exceptions::PyValueError::new_err(format!(
            "instant {us} µs is outside the zone table"
        ))
    })
}

fn no_tier(py: Python<'_>, customer: &str, version: &str) -> PyErr {
    match py
        .import("services.scorer.core.scoring")
        .and_then(|m| m.getattr("NoTier"))
    {
        Ok(kind) => PyErr::from_value(
            kind.call1((format!(
                "no tier matched customer {customer} under {version}"
            ),))
                .map(|e| e.into_any())
                .unwrap_or_else(|e| e.into_value(py).into_bound(py).into_any()),
        ),
        Err(e) => e,
    }
}

fn change_id(customer: &str, cause: &Cause) -> String {
    let text = match cause {
        Cause::Event(source, id) => format!("{customer}|event|{source}|{id}|"),
        Cause::Clock(reason, detail) => format!("{customer}|{reason}|{detail}"),
    };
    let digest = Sha256::digest(text.as_bytes());
    let mut out = String::with_capacity(32);
    for b in &digest[..16] {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

fn attrs_of(list: &Bound<'_, PyAny>) -> PyResult<Attributes> {
    let mut out = Vec::new();
    for item in list.try_iter()? {
        let (k, v): (String, Bound<'_, PyAny>) = item?.extract()?;
        let value = if v.is_instance_of::<pyo3::types::PyBool>() {
            Attr::Bool(v.extract()?)
        } else if v.is_instance_of::<pyo3::types::PyInt>() {
            Attr::Int(v.extract()?)
        } else if v.is_instance_of::<pyo3::types::PyFloat>() {
            Attr::Float(v.extract()?)
        } else {
            Attr::Str(v.extract()?)
        };
        out.push((k, value));
    }
    Ok(out)
}

/// (id, label zh, label en, rank, high_value)
type TierRow = (String, String, String, i64, bool);
/// (threshold mode, the ruleset's tiers, other versions' tiers by version)
type RecordsSpec = (String, Vec<TierRow>, Vec<(String, Vec<TierRow>)>);

impl Engine {
    /// `scoring.judge`: the standing the features give, and the change from `standing`.
    fn judge(
        &mut self,
        py: Python<'_>,
        customer: &str,
        features: Features,
        standing: Option<Standing>,
        cause: Cause,
        now_us: i64,
    ) -> PyResult<(Standing, Option<Change>)> {
        let candidate = match self.rules.candidate(py, &features)? {
            Some(c) => c,
            None => return Err(no_tier(py, customer, &self.rules.version)),
        };
        let mut tier = self.rules.tiers[candidate].clone();
        if let Some(s) = &standing {
            if s.tier != tier
                && self.rules.has_stability()
                && self
                    .rules
                    .holds(py, &features, &s.tier, s.since_us, candidate)?
            {
                tier = s.tier.clone();
            }
            if s.tier == tier {
                let kept = Standing {
                    tier,
                    since_us: s.since_us,
                    version: self.rules.version.clone(),
                };
                return Ok((kept, None));
            }
        }
        let after = Standing {
            tier,
            since_us: now_us,
            version: self.rules.version.clone(),
        };
        let change = Change {
            change_id: change_id(customer, &cause),
            customer_id: customer.to_string(),
            before: standing,
            after: after.clone(),
            features,
            cause,
        };
        Ok((after, Some(change)))
    }

    /// A tier of the ruleset, or of the version a stored standing names (`Standards.tier`).
    fn tier_info(&self, version: &str, id: &str) -> Option<&records::TierInfo> {
        if let Some(tier) = self.older.get(version).and_then(|tiers| tiers.get(id)) {
            return Some(tier);
        }
        let i = self.rules.tiers.iter().position(|t| t == id)?;
        self.tier_infos.get(i)
    }

    /// The change's two records, when the engine builds them (None: Python does).
    fn records_of(&self, c: &Change) -> Option<records::ChangeRecords> {
        let context = self.records.as_ref()?;
        let placeholder;
        let before = match &c.before {
            None => None,
            Some(b) => {
                let tier = match self.tier_info(&b.version, &b.tier) {
                    Some(t) => t,
                    None => {
                        placeholder = records::TierInfo::placeholder(&b.tier);
                        &placeholder
                    }
                };
                Some(records::TierSince {
                    tier,
                    since_us: b.since_us,
                })
            }
        };
        let after = records::TierSince {
            tier: self.tier_info(&c.after.version, &c.after.tier)?,
            since_us: c.after.since_us,
        };
        let cause = match &c.cause {
            Cause::Event(source, id) => records::Cause::Event { source, id },
            Cause::Clock(reason, _) => records::Cause::Clock(reason),
        };
        records::change_records(
            context,
            &records::ChangeView {
                change_id: &c.change_id,
                customer_id: &c.customer_id,
                before,
                after,
                ruleset_version: &c.after.version,
                features: &c.features,
                cause,
            },
        )
    }

    /// `entries.due_day`: the first day the tier may change with no new event.
    fn due(&self, state: &State, today: i32, standing: Option<&Standing>) -> PyResult<i32> {
        let snap = state.snapshot(today, &self.windows);
        self.due_snapped(&snap, today.max(state.anchor), standing)
    }

    /// The same from the snapshot at `today` (`due_from`, then `due_beyond`'s dwell).
    fn due_snapped(
        &self,
        snap: &Snapshot,
        today: i32,
        standing: Option<&Standing>,
    ) -> PyResult<i32> {
        let mut due = self.rules.due_from(snap, today);
        if self.rules.min_days_in_tier != 0 {
            if due <= today + 1 {
                return Ok(due);
            }
            if let Some(s) = standing {
                let end = now_day(&self.zone, s.since_us)? + self.rules.min_days_in_tier;
                if today < end && end < due {
                    due = end;
                }
            }
            due = due.max(today + 1);
        }
        Ok(due)
    }

    fn due_of(&mut self, customer: &str) -> PyResult<i32> {
        let entry = &self.entries[customer];
        if let Some(due) = entry.due {
            return Ok(due);
        }
        let due = self.due(&entry.state, entry.day, entry.standing.as_ref())?;
        self.entries.get_mut(customer).unwrap().due = Some(due);
        Ok(due)
    }

    /// `Workset.score`: one event applied to its customer and judged at
    /// max(clock day, the state's latest day).
    fn score_one(
        &mut self,
        py: Python<'_>,
        index: usize,
        clock_day: i32,
        now_us: i64,
    ) -> PyResult<()> {
        let event = self.events[index].take().expect("a fresh event");
        let previous = self.entries.remove(&event.subject);
        let (state, standing, change_id, saved) = match previous {
            None => (None, None, None, None),
            Some(e) => (Some(e.state), e.standing, e.change_id, e.saved),
        };
        let mut state = State::apply(state, &event.fact, &self.windows);
        if !state.tracks.is_empty() {
            state.tracks.clear(); // a ruleset without declared streams drops them (declared.observe)
        }
        let today = clock_day.max(state.anchor);
        let features = state
            .features(today, &self.windows)
            .expect("today is at or after the anchor");
        let cause = Cause::Event(event.source, event.id);
        let (standing, change) =
            self.judge(py, &event.subject, features, standing, cause, now_us)?;
        let change_id = match &change {
            Some(c) => Some(c.change_id.clone()),
            None => change_id,
        };
        if let Some(c) = change {
            self.changes.push((event.partition, c));
        }
        self.entries.insert(
            event.subject,
            Entry {
                partition: event.partition,
                state,
                encoded: None,
                standing: Some(standing),
                change_id,
                due: None,
                day: today,
                dirty: true,
                saved,
            },
        );
        Ok(())
    }

    /// `Workset.sweep_loaded`: the customers in memory of the partition whose due day has
    /// come, judged at `day` (time passed).
    fn sweep(&mut self, py: Python<'_>, partition: i32, day: i32, now_us: i64) -> PyResult<()> {
        let mut due_now: Vec<String> = Vec::new();
        let ids: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| e.partition == partition)
            .map(|(c, _)| c.clone())
            .collect();
        for customer in ids {
            if self.due_of(&customer)? <= day {
                due_now.push(customer);
            }
        }
        // the Python work set walks its entries in insertion order; the changes' order in
        // the outbox follows it only per customer, which is all consumers rely on
        due_now.sort_unstable();
        for customer in due_now {
            let entry = self.entries.remove(&customer).unwrap();
            let today = day.max(entry.state.anchor);
            let features = entry
                .state
                .features(today, &self.windows)
                .expect("at or after the anchor");
            let cause = Cause::Clock("time_passed", day.to_string());
            let mut entry = entry;
            let (standing, change) = self.judge(
                py,
                &customer,
                features,
                entry.standing.take(),
                cause,
                now_us,
            )?;
            let due = self.due(&entry.state, today, Some(&standing))?;
            entry.standing = Some(standing);
            if let Some(c) = change {
                entry.change_id = Some(c.change_id.clone());
                self.changes.push((partition, c));
            }
            // time passed: always written (the Python work set's rule)
            entry.dirty = true;
            entry.day = today;
            entry.due = Some(due);
            self.entries.insert(customer, entry);
        }
        Ok(())
    }

    fn standing_tuple<'py>(py: Python<'py>, s: &Standing) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(
            py,
            [
                s.tier.clone().into_pyobject(py)?.into_any(),
                s.since_us.into_pyobject(py)?.into_any(),
                s.version.clone().into_pyobject(py)?.into_any(),
            ],
        )
    }
}

#[pymethods]
impl Engine {
    /// windows: (main, short, interactions, history); offsets/until: services/scorer/
    /// compiled_zone.offsets; rates: currency -> decimal string; the ruleset: its version,
    /// tier ids in order, the features its memo key holds, whether it reads R/F/M levels,
    /// the thresholds (recency days, frequency, monetary in minor units), `decide(*features)
    /// -> tier index or -1`, `hold(features, tier id, since µs, candidate index) -> bool`
    /// or None, min_days_in_tier, daily, and the score bands' edges of recency and tenure.
    #[new]
    #[pyo3(signature = (*, windows, offsets, until, base_currency, rates, version, tiers, numbers, levels, thresholds, decide, hold, min_days_in_tier, daily, recency_edges, tenure_edges, records=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        windows: (i32, i32, i32, i32),
        offsets: Vec<(i64, i64)>,
        until: i64,
        base_currency: String,
        rates: Vec<(String, String)>,
        version: String,
        tiers: Vec<String>,
        numbers: Vec<String>,
        levels: bool,
        thresholds: (i64, i64, i64),
        decide: PyObject,
        hold: Option<PyObject>,
        min_days_in_tier: i32,
        daily: bool,
        recency_edges: Vec<i32>,
        tenure_edges: Vec<i32>,
        records: Option<RecordsSpec>,
    ) -> PyResult<Engine> {
        let (context, tier_infos, older) = match records {
            None => (None, Vec::new(), FxMap::default()),
            Some((mode, current, known)) => {
                let mode = if mode == "population" {
                    records::Mode::Population
                } else {
                    records::Mode::Fixed
                };
                let t = records::Thresholds {
                    recency_days: thresholds.0,
                    frequency: thresholds.1,
                    monetary: thresholds.2,
                };
                let info = |t: &TierRow| records::TierInfo::new(&t.0, &t.1, &t.2, t.3, t.4);
                let older = known
                    .iter()
                    .map(|(v, tiers)| {
                        (
                            v.clone(),
                            tiers.iter().map(|t| (t.0.clone(), info(t))).collect(),
                        )
                    })
                    .collect();
                (
                    Some(records::RecordContext::new(t, mode, &offsets, until)),
                    current.iter().map(info).collect(),
                    older,
                )
            }
        };
        let rules = Rules::new(
            version,
            tiers,
            &numbers,
            levels,
            thresholds,
            decide,
            hold,
            min_days_in_tier,
            daily,
            recency_edges,
            tenure_edges,
        )?;
        Ok(Engine {
            windows: Windows {
                main: windows.0,
                short: windows.1,
                interactions: windows.2,
                history: windows.3,
            },
            zone: Zone::new(offsets, until),
            money: Money::new(base_currency, rates)
                .map_err(pyo3::exceptions::PyValueError::new_err)?,
            rules,
            records: context,
            tier_infos,
            older,
            events: Vec::new(),
            identities: Vec::new(),
            repeats: Vec::new(),
            fresh: Vec::new(),
            entries: FxMap::default(),
            changes: Vec::new(),
            counts: FxMap::default(),
        })
    }

    /// A new transaction: nothing held from the last one.
    fn begin(&mut self) {
        self.events.clear();
        self.identities.clear();
        self.repeats.clear();
        self.fresh.clear();
        self.entries.clear();
        self.changes.clear();
        self.counts.clear();
    }

    /// Decodes the batch's records (objects with partition, key, value and headers, in
    /// partition order); returns the indices the Python decoding must decide (`put` them
    /// when it accepts them).
    fn decode(&mut self, py: Python<'_>, records: &Bound<'_, PyList>) -> PyResult<Vec<usize>> {
        let mut fallback = Vec::new();
        for (i, record) in records.iter().enumerate() {
            let partition: i32 = record.getattr(intern!(py, "partition"))?.extract()?;
            let key = record.getattr(intern!(py, "key"))?;
            let value = record.getattr(intern!(py, "value"))?;
            let headers = record.getattr(intern!(py, "headers"))?;
            let key_bytes = key.downcast::<PyBytes>().ok().map(|b| b.as_bytes());
            let value_bytes = value.downcast::<PyBytes>().ok().map(|b| b.as_bytes());
            let mut pairs: Vec<(Bound<'_, PyAny>, Bound<'_, PyAny>)> = Vec::with_capacity(8);
            for h in headers.try_iter()? {
                let h = h?;
                pairs.push((h.get_item(0)?, h.get_item(1)?));
            }
            let mut borrowed: Vec<(&str, &[u8])> = Vec::with_capacity(pairs.len());
            let mut usable = true;
            for (name, raw) in &pairs {
                match (
                    name.downcast::<pyo3::types::PyString>(),
                    raw.downcast::<PyBytes>(),
                ) {
                    (Ok(n), Ok(b)) => match n.to_str() {
                        Ok(s) => borrowed.push((s, b.as_bytes())),
                        Err(_) => usable = false,
                    },
                    _ => usable = false,
                }
            }
            let decoded = if usable
                && (key.is_none() || key_bytes.is_some())
                && (value.is_none() || value_bytes.is_some())
            {
                event::decode(key_bytes, &borrowed, value_bytes, &self.zone, &self.money)
            } else {
                None
            };
            match decoded {
                Some(d) => self.events.push(Some(Event {
                    partition,
                    source: d.source,
                    id: d.id,
                    subject: d.subject,
                    time_us: d.time_us,
                    digest: d.digest,
                    fact: d.fact,
                })),
                None => {
                    self.events.push(None);
                    fallback.push(i);
                }
            }
        }
        Ok(fallback)
    }

    /// A record the Python decoding accepted: (partition, source, id, subject, time µs,
    /// digest, day, kind, amount, channel, action, actor, attributes, profile).
    #[pyo3(signature = (index, partition, source, id, subject, time_us, digest, day, kind, amount, channel, action, actor, attributes, profile))]
    #[allow(clippy::too_many_arguments)]
    fn put(
        &mut self,
        index: usize,
        partition: i32,
        source: String,
        id: String,
        subject: String,
        time_us: i64,
        digest: &[u8],
        day: i32,
        kind: &str,
        amount: i64,
        channel: Option<String>,
        action: Option<String>,
        actor: Option<String>,
        attributes: &Bound<'_, PyAny>,
        profile: Option<(i64, String, String, Option<String>, Bound<'_, PyAny>)>,
    ) -> PyResult<()> {
        let kind = match kind {
            "purchase" => Kind::Purchase,
            "refund" => Kind::Refund,
            "interaction" => Kind::Interaction,
            "profile" => Kind::Profile,
            other => {
                return Err(pyo3::exceptions::PyValueError::new_err(format!(
                    "kind {other:?}"
                )))
            }
        };
        let profile = match profile {
            None => None,
            Some((time_us, source, id, team, attributes)) => Some(Box::new(Profile {
                time_us,
                source,
                id,
                team,
                attributes: attrs_of(&attributes)?,
            })),
        };
        let fact = Fact {
            day,
            kind,
            amount,
            channel,
            action,
            actor,
            attributes: attrs_of(attributes)?,
            profile,
        };
        let digest: [u8; 32] = digest
            .try_into()
            .map_err(|_| pyo3::exceptions::PyValueError::new_err("a digest has 32 bytes"))?;
        self.events[index] = Some(Event {
            partition,
            source,
            id,
            subject,
            time_us,
            digest,
            fact,
        });
        Ok(())
    }

    /// The batch's event identities for the dedupe statement: (keys, digests) of the first
    /// record of each (source, id), as the events seen store them (`event_key`, the
    /// content digest's first SEEN_DIGEST bytes).
    fn identities<'py>(
        &mut self,
        py: Python<'py>,
    ) -> PyResult<(Bound<'py, PyList>, Bound<'py, PyList>)> {
        let mut first: FxMap<(&str, &str), usize> = FxMap::default();
        let mut identities = Vec::new();
        let mut repeats = Vec::new();
        for (i, e) in self.events.iter().enumerate() {
            let Some(e) = e else { continue };
            if first.contains_key(&(e.source.as_str(), e.id.as_str())) {
                repeats.push(i);
            } else {
                first.insert((e.source.as_str(), e.id.as_str()), i);
                identities.push(i);
            }
        }
        let keys = PyList::empty(py);
        let digests = PyList::empty(py);
        for &i in &identities {
            let e = self.events[i].as_ref().unwrap();
            keys.append(PyBytes::new(py, &event_key(&e.source, &e.id)))?;
            digests.append(PyBytes::new(py, &e.digest[..SEEN_DIGEST]))?;
        }
        self.identities = identities;
        self.repeats = repeats;
        Ok((keys, digests))
    }

    /// What PostgreSQL said of each identity (0 new, 1 seen, 2 seen with another digest);
    /// returns the conflicting records as (index, source, id), and keeps the new ones.
    fn seen(&mut self, statuses: Vec<u8>) -> PyResult<Vec<(usize, String, String)>> {
        if statuses.len() != self.identities.len() {
            return Err(pyo3::exceptions::PyValueError::new_err(
                "one status per identity",
            ));
        }
        let mut conflicts = Vec::new();
        let mut fresh = Vec::new();
        let mut digest_of: FxMap<(String, String), [u8; 32]> = FxMap::default();
        for (&i, &status) in self.identities.iter().zip(&statuses) {
            let e = self.events[i].as_ref().unwrap();
            digest_of.insert((e.source.clone(), e.id.clone()), e.digest);
            match status {
                0 => fresh.push(i),
                2 => conflicts.push((i, e.source.clone(), e.id.clone())),
                _ => {}
            }
        }
        for &i in &self.repeats {
            let e = self.events[i].as_ref().unwrap();
            if digest_of.get(&(e.source.clone(), e.id.clone())) != Some(&e.digest) {
                conflicts.push((i, e.source.clone(), e.id.clone()));
            }
        }
        self.fresh = fresh;
        Ok(conflicts)
    }

    /// The customers of the fresh events not held yet (to load): their ids, and each one's
    /// partition at the same index.
    fn subjects(&self) -> (Vec<String>, Vec<i32>) {
        let (mut ids, mut partitions) = (Vec::new(), Vec::new());
        let mut seen: FxMap<&str, ()> = FxMap::default();
        for &i in &self.fresh {
            let e = self.events[i].as_ref().unwrap();
            if !self.entries.contains_key(&e.subject)
                && seen.insert(e.subject.as_str(), ()).is_none()
            {
                ids.push(e.subject.clone());
                partitions.push(e.partition);
            }
        }
        (ids, partitions)
    }

    /// Per partition with fresh events: (how many, the first one's time, the latest time),
    /// times in µs.
    fn spans(&self) -> FxMap<i32, (usize, i64, i64)> {
        let mut out: FxMap<i32, (usize, i64, i64)> = FxMap::default();
        for &i in &self.fresh {
            let e = self.events[i].as_ref().unwrap();
            out.entry(e.partition)
                .and_modify(|s| {
                    s.0 += 1;
                    s.2 = s.2.max(e.time_us);
                })
                .or_insert((1, e.time_us, e.time_us));
        }
        out
    }

    /// Stored customers: (customer_id, state, tier, tier_since µs, ruleset_version,
    /// partition, due_day, change_id); those held already are newer and kept.
    fn load(&mut self, rows: &Bound<'_, PyList>) -> PyResult<()> {
        for row in rows.iter() {
            let customer: String = row.get_item(0)?.extract()?;
            if self.entries.contains_key(&customer) {
                continue;
            }
            let encoded: Vec<u8> = row.get_item(1)?.extract()?;
            let state = codec::decode(&encoded, &self.windows).map_err(|e| {
                pyo3::exceptions::PyValueError::new_err(format!("customer {customer}: {}", e.0))
            })?;
            let tier: Option<String> = row.get_item(2)?.extract()?;
            let since: Option<i64> = row.get_item(3)?.extract()?;
            let version: Option<String> = row.get_item(4)?.extract()?;
            let partition: i32 = row.get_item(5)?.extract()?;
            let due: i32 = row.get_item(6)?.extract()?;
            let change_id: Option<String> = row.get_item(7)?.extract()?;
            let standing = match (&tier, since) {
                (Some(t), Some(s)) => Some(Standing {
                    tier: t.clone(),
                    since_us: s,
                    version: version.unwrap_or_else(|| self.rules.version.clone()),
                }),
                _ => None,
            };
            let day = state.anchor;
            self.entries.insert(
                customer,
                Entry {
                    partition,
                    state,
                    encoded: Some(encoded),
                    standing,
                    change_id,
                    due: Some(due),
                    day,
                    dirty: false,
                    saved: Some((partition, tier)),
                },
            );
        }
        Ok(())
    }

    /// Every fresh event, in order, as the handler's `_score` does; `parts` are (partition,
    /// clock µs, swept day, last event µs) and come back updated.
    fn score(
        &mut self,
        py: Python<'_>,
        parts: Vec<(i32, Option<i64>, Option<i32>, Option<i64>)>,
        wall_us: i64,
        event_clock: bool,
    ) -> PyResult<Vec<(i32, Option<i64>, Option<i32>, Option<i64>)>> {
        let mut parts = parts;
        let wall_day = now_day(&self.zone, wall_us)?;
        let fresh = std::mem::take(&mut self.fresh);
        for &i in &fresh {
            let (partition, time_us) = {
                let e = self.events[i].as_ref().unwrap();
                (e.partition, e.time_us)
            };
            let part = parts.iter_mut().find(|p| p.0 == partition).ok_or_else(|| {
                pyo3::exceptions::PyValueError::new_err("an event of a partition not given")
            })?;
            let (day, now) = if event_clock {
                let now = match part.1 {
                    None => time_us,
                    Some(clock) => clock.max(time_us),
                };
                let day = now_day(&self.zone, now)?;
                if part.2.is_none_or(|swept| day > swept) {
                    self.sweep(py, partition, day, now)?;
                    part.2 = Some(day);
                }
                part.1 = Some(now);
                (day, now)
            } else {
                (wall_day, wall_us)
            };
            self.score_one(py, i, day, now)?;
            if part.3.is_none_or(|last| time_us > last) {
                part.3 = Some(time_us);
            }
        }
        Ok(parts)
    }

    /// The re-tier's and the wall clock's sweep's customers, rescored from their stored rows
    /// (`rescoring.Rescorer`, which it is held equal to): rows as `columns._RESCAN` reads
    /// them — (customer_id, state or None when the stored snapshot covers `day`, tier, since
    /// µs, version, partition, due_day, change_id, scored_day, stable_until, first_day,
    /// last_purchase_day, frequency, monetary, frequency_short, monetary_short,
    /// interactions) — judged at `day` for `reason` ("time_passed", "ruleset_activated",
    /// "thresholds_refreshed") with `detail`. Returns the columns of the rows whose tier
    /// moved (customer_id, tier, since µs, version, change_id, due_day and the snapshot's
    /// nine columns), of those whose due day or snapshot alone moved (customer_id, due_day
    /// and the nine), and the tier counts' deltas as (partition, tier, delta). The changes
    /// join the transaction's (`changes`).
    #[allow(clippy::type_complexity)]
    fn rescore<'py>(
        &mut self,
        py: Python<'py>,
        rows: &Bound<'py, PyList>,
        day: i32,
        now_us: i64,
        reason: &str,
        detail: String,
    ) -> PyResult<(
        Bound<'py, PyTuple>,
        Bound<'py, PyTuple>,
        Vec<(i32, String, i64)>,
    )> {
        let reason: &'static str = match reason {
            "time_passed" => "time_passed",
            "ruleset_activated" => "ruleset_activated",
            "thresholds_refreshed" => "thresholds_refreshed",
            other => {
                return Err(pyo3::exceptions::PyValueError::new_err(format!(
                    "not a clock reason: {other:?}"
                )))
            }
        };
        let moved: Vec<Bound<'py, PyList>> = (0..15).map(|_| PyList::empty(py)).collect();
        let rescheduled: Vec<Bound<'py, PyList>> = (0..11).map(|_| PyList::empty(py)).collect();
        let mut counts: FxMap<(i32, String), i64> = FxMap::default();
        let stability = self.rules.has_stability();
        for row in rows.iter() {
            let customer: String = row.get_item(0)?.extract()?;
            let encoded = row.get_item(1)?;
            let tier: Option<String> = row.get_item(2)?.extract()?;
            let since: Option<i64> = row.get_item(3)?.extract()?;
            let version: Option<String> = row.get_item(4)?.extract()?;
            let partition: i32 = row.get_item(5)?.extract()?;
            let stored_due: i32 = row.get_item(6)?.extract()?;
            let stored_change: Option<String> = row.get_item(7)?.extract()?;
            let state_sent = !encoded.is_none();
            let snap = if state_sent {
                let bytes: &[u8] = encoded.downcast::<PyBytes>()?.as_bytes();
                let state = codec::decode(bytes, &self.windows).map_err(|e| {
                    pyo3::exceptions::PyValueError::new_err(format!("customer {customer}: {}", e.0))
                })?;
                state.snapshot(day, &self.windows)
            } else {
                let scored: i32 = row.get_item(8)?.extract()?;
                let until: i32 = row.get_item(9)?.extract()?;
                if !(scored <= day && day < until) {
                    return Err(pyo3::exceptions::PyValueError::new_err(format!(
                        "customer {customer} came without its state for day {day}"
                    )));
                }
                Snapshot {
                    day: scored,
                    stable_until: until,
                    first_day: row.get_item(10)?.extract()?,
                    last_purchase: row.get_item(11)?.extract()?,
                    totals: Totals {
                        frequency: row.get_item(12)?.extract()?,
                        monetary: row.get_item(13)?.extract()?,
                        frequency_short: row.get_item(14)?.extract()?,
                        monetary_short: row.get_item(15)?.extract()?,
                        interactions: row.get_item(16)?.extract()?,
                    },
                }
            };
            let today = day.max(snap.day);
            let features = snap.features(today);
            let standing = match (&tier, since) {
                (Some(t), Some(s)) => Some(Standing {
                    tier: t.clone(),
                    since_us: s,
                    version: version.unwrap_or_else(|| self.rules.version.clone()),
                }),
                _ => None,
            };
            let mut due = self.rules.due_from(&snap, today);
            let (after, change) = if !stability {
                let candidate = match self.rules.candidate(py, &features)? {
                    Some(c) => c,
                    None => return Err(no_tier(py, &customer, &self.rules.version)),
                };
                if tier.as_deref() == Some(self.rules.tiers[candidate].as_str()) {
                    (None, None)
                } else {
                    let cause = Cause::Clock(reason, detail.clone());
                    let (after, change) =
                        self.judge(py, &customer, features, standing, cause, now_us)?;
                    (Some(after), change)
                }
            } else {
                let cause = Cause::Clock(reason, detail.clone());
                let (after, change) =
                    self.judge(py, &customer, features, standing, cause, now_us)?;
                due = self.due_snapped(&snap, today, Some(&after))?;
                if change.is_none() && tier.as_deref() == Some(after.tier.as_str()) {
                    (None, None)
                } else {
                    (Some(after), change)
                }
            };
            let snapshot_columns = |out: &[Bound<'py, PyList>]| -> PyResult<()> {
                let t = &snap.totals;
                out[0].append(t.frequency)?;
                out[1].append(t.monetary)?;
                out[2].append(t.frequency_short)?;
                out[3].append(t.monetary_short)?;
                out[4].append(t.interactions)?;
                out[5].append(snap.first_day)?;
                out[6].append(snap.last_purchase)?;
                out[7].append(snap.day)?;
                out[8].append(snap.stable_until)
            };
            match after {
                None => {
                    if reason != "time_passed" && due >= stored_due && !state_sent {
                        continue; // the tier stands, the due day is no earlier, the snapshot is stored
                    }
                    rescheduled[0].append(&customer)?;
                    rescheduled[1].append(due)?;
                    snapshot_columns(&rescheduled[2..])?;
                }
                Some(after) => {
                    if tier.as_deref() != Some(after.tier.as_str()) {
                        if let Some(t) = &tier {
                            *counts.entry((partition, t.clone())).or_insert(0) -= 1;
                        }
                        *counts.entry((partition, after.tier.clone())).or_insert(0) += 1;
                    }
                    let change_id = match &change {
                        Some(c) => Some(c.change_id.clone()),
                        None => stored_change,
                    };
                    moved[0].append(&customer)?;
                    moved[1].append(&after.tier)?;
                    moved[2].append(after.since_us)?;
                    moved[3].append(&after.version)?;
                    moved[4].append(change_id)?;
                    moved[5].append(due)?;
                    snapshot_columns(&moved[6..])?;
                    if let Some(c) = change {
                        self.changes.push((partition, c));
                    }
                }
            }
        }
        let mut deltas: Vec<(i32, String, i64)> = counts
            .into_iter()
            .filter(|(_, d)| *d != 0)
            .map(|((p, t), d)| (p, t, d))
            .collect();
        deltas.sort_unstable();
        Ok((
            PyTuple::new(py, moved)?,
            PyTuple::new(py, rescheduled)?,
            deltas,
        ))
    }

    /// The changed customers as the save statement's columns (customer_id, state, tier,
    /// since µs, version, partition, due_day, change_id, frequency, monetary,
    /// frequency_short, monetary_short, interactions, first_day, last_purchase_day,
    /// scored_day, stable_until), and the tier counts' deltas as (partition, tier, delta);
    /// they are clean afterwards.
    fn rows<'py>(
        &mut self,
        py: Python<'py>,
    ) -> PyResult<(Bound<'py, PyTuple>, Vec<(i32, String, i64)>)> {
        let columns: Vec<Bound<'py, PyList>> = (0..17).map(|_| PyList::empty(py)).collect();
        let mut dirty: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| e.dirty)
            .map(|(c, _)| c.clone())
            .collect();
        dirty.sort_unstable();
        for customer in dirty {
            if self.entries[&customer].due.is_none() {
                let e = &self.entries[&customer];
                let due = self.due(&e.state, e.day, e.standing.as_ref())?;
                self.entries.get_mut(&customer).unwrap().due = Some(due);
            }
            let e = self.entries.get_mut(&customer).unwrap();
            if e.encoded.is_none() {
                e.encoded = Some(codec::encode(&e.state));
            }
            let snap = e.state.snapshot(e.day, &self.windows);
            let s = e.standing.as_ref();
            columns[0].append(&customer)?;
            columns[1].append(PyBytes::new(py, e.encoded.as_ref().unwrap()))?;
            columns[2].append(s.map(|s| s.tier.clone()))?;
            columns[3].append(s.map(|s| s.since_us))?;
            columns[4].append(s.map(|s| s.version.clone()))?;
            columns[5].append(e.partition)?;
            columns[6].append(e.due.unwrap())?;
            columns[7].append(e.change_id.clone())?;
            columns[8].append(snap.totals.frequency)?;
            columns[9].append(snap.totals.monetary)?;
            columns[10].append(snap.totals.frequency_short)?;
            columns[11].append(snap.totals.monetary_short)?;
            columns[12].append(snap.totals.interactions)?;
            columns[13].append(snap.first_day)?;
            columns[14].append(snap.last_purchase)?;
            columns[15].append(snap.day)?;
            columns[16].append(snap.stable_until)?;
            e.dirty = false;
            let now = (e.partition, s.map(|s| s.tier.clone()));
            if e.saved.as_ref() != Some(&now) {
                if let Some((p, Some(t))) = &e.saved {
                    *self.counts.entry((*p, t.clone())).or_insert(0) -= 1;
                }
                if let Some(t) = &now.1 {
                    *self.counts.entry((now.0, t.clone())).or_insert(0) += 1;
                }
                e.saved = Some(now);
            }
        }
        let mut counts: Vec<(i32, String, i64)> = self
            .counts
            .drain()
            .filter(|(_, d)| *d != 0)
            .map(|((p, t), d)| (p, t, d))
            .collect();
        counts.sort_unstable();
        Ok((PyTuple::new(py, columns)?, counts))
    }

    /// The tier changes made since the last call, in order. Those whose records the engine
    /// builds come as (change_id, customer_id, changed_at µs, key, changed value, changed
    /// headers, latest value, latest headers, from tier or None, to tier); the others as
    /// (change_id, customer_id, before (tier, since µs, version) or None, after, features
    /// (day, recency_days, frequency, monetary, frequency_90d, monetary_90d,
    /// interactions_30d, tenure_days), cause: ("event", source, id) or (reason, detail)),
    /// for Python to build.
    /// Each comes as (True, partition, built...) or (False, partition, for Python...), with
    /// the partition of the customer (whose history sequence it takes).
    fn changes<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let out = PyList::empty(py);
        let changes = std::mem::take(&mut self.changes);
        let mut shared = SharedHeaders::default();
        for (partition, c) in changes {
            if let Some(made) = self.records_of(&c) {
                shared.change();
                let mut headers = |h: &records::Headers| -> PyResult<Bound<'py, PyList>> {
                    let list = PyList::empty(py);
                    for (name, value) in h {
                        list.append(shared.pair(py, name, value)?)?;
                    }
                    Ok(list)
                };
                let changed_headers = headers(&made.changed_headers)?;
                let latest_headers = headers(&made.latest_headers)?;
                out.append((
                    true,
                    partition,
                    &c.change_id,
                    &c.customer_id,
                    c.after.since_us,
                    PyBytes::new(py, &made.key),
                    PyBytes::new(py, &made.changed),
                    changed_headers,
                    PyBytes::new(py, &made.latest),
                    latest_headers,
                    c.before.as_ref().map(|b| b.tier.as_str()),
                    &c.after.tier,
                ))?;
                continue;
            }
            let before = match &c.before {
                None => py.None().into_bound(py),
                Some(s) => Engine::standing_tuple(py, s)?.into_any(),
            };
            let cause = match &c.cause {
                Cause::Event(source, id) => ("event", source.clone(), id.clone())
                    .into_pyobject(py)?
                    .into_any(),
                Cause::Clock(reason, detail) => {
                    (*reason, detail.clone()).into_pyobject(py)?.into_any()
                }
            };
            out.append((
                false,
                partition,
                c.change_id,
                c.customer_id,
                before,
                Engine::standing_tuple(py, &c.after)?,
                c.features.row(),
                cause,
            ))?;
        }
        Ok(out)
    }
}

/// The bytes of a content digest kept per event seen (services/scorer/store/seen.py).
const SEEN_DIGEST: usize = 8;

/// An event's key among the events seen: the first 16 bytes of SHA-256 over the source's
/// length (4 bytes, big-endian), the source and the id (services/scorer/store/seen.py's
/// `event_key`, and migration 0014's SQL).
fn event_key(source: &str, id: &str) -> [u8; 16] {
    let mut hash = Sha256::new();
    hash.update((source.len() as u32).to_be_bytes());
    hash.update(source.as_bytes());
    hash.update(id.as_bytes());
    let full: [u8; 32] = hash.finalize().into();
    let mut key = [0u8; 16];
    key.copy_from_slice(&full[..16]);
    key
}

/// For tests: `event_key`.
#[pyfunction]
pub fn event_key_for_test(source: &str, id: &str) -> Vec<u8> {
    event_key(source, id).to_vec()
}

/// For tests: the state codec and features alone.
#[pyfunction]
pub fn reencode(data: &[u8], windows: (i32, i32, i32, i32)) -> PyResult<Vec<u8>> {
    let w = Windows {
        main: windows.0,
        short: windows.1,
        interactions: windows.2,
        history: windows.3,
    };
    let state =
        codec::decode(data, &w).map_err(|e| pyo3::exceptions::PyValueError::new_err(e.0))?;
    Ok(codec::encode(&state))
}

/// For tests: a state after facts, as bytes, and its features at `today`.
#[pyfunction]
#[pyo3(signature = (facts, windows, today))]
pub fn replay<'py>(
    py: Python<'py>,
    facts: &Bound<'py, PyList>,
    windows: (i32, i32, i32, i32),
    today: i32,
) -> PyResult<(
    Bound<'py, PyBytes>,
    Option<FeatureRow>,
    (i32, i32, i32, Option<i32>, i64, i64, i64, i64, i64),
)> {
    let w = Windows {
        main: windows.0,
        short: windows.1,
        interactions: windows.2,
        history: windows.3,
    };
    let mut state: Option<State> = None;
    for item in facts.iter() {
        let (day, kind, amount, profile): (
            i32,
            String,
            i64,
            Option<(i64, String, String, Option<String>, Bound<'py, PyAny>)>,
        ) = item.extract()?;
        let kind = match kind.as_str() {
            "purchase" => Kind::Purchase,
            "refund" => Kind::Refund,
            "interaction" => Kind::Interaction,
            _ => Kind::Profile,
        };
        let profile = match profile {
            None => None,
            Some((t, s, i, team, a)) => Some(Box::new(Profile {
                time_us: t,
                source: s,
                id: i,
                team,
                attributes: attrs_of(&a)?,
            })),
        };
        let fact = Fact {
            day,
            kind,
            amount,
            channel: None,
            action: None,
            actor: None,
            attributes: Vec::new(),
            profile,
        };
        state = Some(State::apply(state, &fact, &w));
    }
    let state = state.ok_or_else(|| pyo3::exceptions::PyValueError::new_err("no facts"))?;
    let features = state.features(today, &w).map(|f| f.row());
    let snap = state.snapshot(today, &w);
    Ok((
        PyBytes::new(py, &codec::encode(&state)),
        features,
        (
            snap.day,
            snap.stable_until,
            snap.first_day,
            snap.last_purchase,
            snap.totals.frequency,
            snap.totals.monetary,
            snap.totals.frequency_short,
            snap.totals.monetary_short,
            snap.totals.interactions,
        ),
    ))
}

/// The (name, value) header pairs of the records `changes` returns, shared where they are
/// equal: a pair every record has (the spec version, source, types, content type) is one
/// tuple for the whole call, and a change's own pairs (id, subject, time) are one tuple for
/// its two records. Tuples are immutable, so sharing them changes nothing but the memory
/// (and the allocations) the relay holds until it publishes.
#[derive(Default)]
struct SharedHeaders<'py> {
    every: Vec<(&'static str, Vec<u8>, Bound<'py, PyTuple>)>,
    this: Vec<(&'static str, Vec<u8>, Bound<'py, PyTuple>)>,
}

impl<'py> SharedHeaders<'py> {
    /// A new change: its own pairs are not those of the previous one.
    fn change(&mut self) {
        self.this.clear();
    }

    fn pair(
        &mut self,
        py: Python<'py>,
        name: &'static str,
        value: &[u8],
    ) -> PyResult<Bound<'py, PyTuple>> {
        let kept = if records::CONSTANT_HEADERS.contains(&name) {
            &mut self.every
        } else {
            &mut self.this
        };
        if let Some((_, _, pair)) = kept.iter().find(|(n, v, _)| *n == name && v == value) {
            return Ok(pair.clone());
        }
        let pair = PyTuple::new(
            py,
            [
                name.into_pyobject(py)?.into_any(),
                PyBytes::new(py, value).into_any(),
            ],
        )?;
        kept.push((name, value.to_vec(), pair.clone()));
        Ok(pair)
    }
}
