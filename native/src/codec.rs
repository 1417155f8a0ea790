//! The stored state, byte for byte as `services/scorer/core/codec.py` writes it with msgspec
//! (msgpack, the most compact encoding of every integer): version 1 (b"\x01") holds
//! [first_day, anchor, last_purchase, last_purchase_dropped, [[day, purchases, purchased,
//! refunded, interactions], ...]]; version 2 (b"\x02") appends the latest profile and the
//! declared streams' tracks, and is written only when a state has either.

use crate::fact::{Attr, Attributes, Profile};
use crate::state::{totals_at, Aggregates, Day, State, Track, Windows};

pub const VERSION_1: u8 = 1;
pub const VERSION_2: u8 = 2;

// ------------------------------------------------------------------ writing

fn int(out: &mut Vec<u8>, v: i64) {
    if v >= 0 {
        let u = v as u64;
        if u < 128 {
            out.push(u as u8);
        } else if u <= 0xff {
            out.extend_from_slice(&[0xcc, u as u8]);
        } else if u <= 0xffff {
            out.push(0xcd);
            out.extend_from_slice(&(u as u16).to_be_bytes());
        } else if u <= 0xffff_ffff {
            out.push(0xce);
            out.extend_from_slice(&(u as u32).to_be_bytes());
        } else {
            out.push(0xcf);
            out.extend_from_slice(&u.to_be_bytes());
        }
    } else if v >= -32 {
        out.push(v as i8 as u8);
    } else if v >= -128 {
        out.extend_from_slice(&[0xd0, v as i8 as u8]);
    } else if v >= -32768 {
        out.push(0xd1);
        out.extend_from_slice(&(v as i16).to_be_bytes());
    } else if v >= -2_147_483_648 {
        out.push(0xd2);
        out.extend_from_slice(&(v as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&v.to_be_bytes());
    }
}

fn opt(out: &mut Vec<u8>, v: Option<i32>) {
    match v {
        None => out.push(0xc0),
        Some(v) => int(out, v as i64),
    }
}

fn array(out: &mut Vec<u8>, n: usize) {
    if n < 16 {
        out.push(0x90 | n as u8);
    } else if n <= 0xffff {
        out.push(0xdc);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(0xdd);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

fn map(out: &mut Vec<u8>, n: usize) {
    if n < 16 {
        out.push(0x80 | n as u8);
    } else if n <= 0xffff {
        out.push(0xde);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(0xdf);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

fn text(out: &mut Vec<u8>, s: &str) {
    let n = s.len();
    if n < 32 {
        out.push(0xa0 | n as u8);
    } else if n <= 0xff {
        out.extend_from_slice(&[0xd9, n as u8]);
    } else if n <= 0xffff {
        out.push(0xda);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(0xdb);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
    out.extend_from_slice(s.as_bytes());
}

fn attr(out: &mut Vec<u8>, a: &Attr) {
    match a {
        Attr::Str(s) => text(out, s),
        Attr::Bool(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Attr::Int(i) => int(out, *i),
        Attr::Float(f) => {
            out.push(0xcb);
            out.extend_from_slice(&f.to_bits().to_be_bytes());
        }
    }
}

pub fn encode(state: &State) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + 12 * state.days.len());
    let v2 = state.profile.is_some() || !state.tracks.is_empty();
    out.push(if v2 { VERSION_2 } else { VERSION_1 });
    array(&mut out, if v2 { 7 } else { 5 });
    int(&mut out, state.first_day as i64);
    int(&mut out, state.anchor as i64);
    opt(&mut out, state.last_purchase);
    opt(&mut out, state.last_purchase_dropped);
    array(&mut out, state.days.len());
    for &(day, c) in &state.days {
        array(&mut out, 5);
        int(&mut out, day as i64);
        int(&mut out, c.purchases);
        int(&mut out, c.purchased);
        int(&mut out, c.refunded);
        int(&mut out, c.interactions);
    }
    if !v2 {
        return out;
    }
    match &state.profile {
        None => out.push(0xc0),
        Some(p) => {
            array(&mut out, 5);
            int(&mut out, p.time_us);
            text(&mut out, &p.source);
            text(&mut out, &p.id);
            match &p.team {
                None => out.push(0xc0),
                Some(t) => text(&mut out, t),
            }
            map(&mut out, p.attributes.len());
            for (k, v) in &p.attributes {
                text(&mut out, k);
                attr(&mut out, v);
            }
        }
    }
    array(&mut out, state.tracks.len());
    for (key, t) in &state.tracks {
        array(&mut out, 5);
        text(&mut out, key);
        int(&mut out, t.epoch);
        opt(&mut out, t.since);
        opt(&mut out, t.dropped);
        array(&mut out, t.days.len());
        for &(day, (n, total, low, high)) in &t.days {
            array(&mut out, 5);
            int(&mut out, day as i64);
            int(&mut out, n);
            int(&mut out, total);
            int(&mut out, low);
            int(&mut out, high);
        }
    }
    out
}

// ------------------------------------------------------------------ reading

#[derive(Debug)]
pub struct BadState(pub String);

struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

type R<T> = Result<T, BadState>;

fn bad<T>(what: &str) -> R<T> {
    Err(BadState(what.to_string()))
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> R<u8> {
        let b = *self
            .data
            .get(self.at)
            .ok_or_else(|| BadState("truncated state".into()))?;
        self.at += 1;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> R<&'a [u8]> {
        if self.at + n > self.data.len() {
            return bad("truncated state");
        }
        let s = &self.data[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }

    fn be(&mut self, n: usize) -> R<u64> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |acc, &b| (acc << 8) | b as u64))
    }

    fn peek_nil(&mut self) -> bool {
        if self.data.get(self.at) == Some(&0xc0) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn int(&mut self) -> R<i64> {
        let b = self.byte()?;
        Ok(match b {
            0x00..=0x7f => b as i64,
            0xe0..=0xff => b as i8 as i64,
            0xcc => self.be(1)? as i64,
            0xcd => self.be(2)? as i64,
            0xce => self.be(4)? as i64,
            0xcf => {
                let v = self.be(8)?;
                if v > i64::MAX as u64 {
                    return bad("integer out of range");
                }
                v as i64
            }
            0xd0 => self.be(1)? as u8 as i8 as i64,
            0xd1 => self.be(2)? as u16 as i16 as i64,
            0xd2 => self.be(4)? as u32 as i32 as i64,
            0xd3 => self.be(8)? as i64,
            _ => return bad("expected an integer"),
        })
    }

    fn day(&mut self) -> R<i32> {
        let v = self.int()?;
        i32::try_from(v).or_else(|_| bad("day out of range"))
    }

    fn opt_day(&mut self) -> R<Option<i32>> {
        if self.peek_nil() {
            return Ok(None);
        }
        Ok(Some(self.day()?))
    }

    fn array(&mut self) -> R<usize> {
        let b = self.byte()?;
        Ok(match b {
            0x90..=0x9f => (b & 0x0f) as usize,
            0xdc => self.be(2)? as usize,
            0xdd => self.be(4)? as usize,
            _ => return bad("expected an array"),
        })
    }

    fn map(&mut self) -> R<usize> {
        let b = self.byte()?;
        Ok(match b {
            0x80..=0x8f => (b & 0x0f) as usize,
            0xde => self.be(2)? as usize,
            0xdf => self.be(4)? as usize,
            _ => return bad("expected a map"),
        })
    }

    fn str_len(&mut self, b: u8) -> R<Option<usize>> {
        Ok(Some(match b {
            0xa0..=0xbf => (b & 0x1f) as usize,
            0xd9 => self.be(1)? as usize,
            0xda => self.be(2)? as usize,
            0xdb => self.be(4)? as usize,
            _ => return Ok(None),
        }))
    }

    fn text(&mut self) -> R<String> {
        let b = self.byte()?;
        let n = self
            .str_len(b)?
            .ok_or_else(|| BadState("expected a string".into()))?;
        let raw = self.take(n)?;
        String::from_utf8(raw.to_vec()).or_else(|_| bad("invalid UTF-8 in state"))
    }

    fn attr(&mut self) -> R<Attr> {
        let b = *self
            .data
            .get(self.at)
            .ok_or_else(|| BadState("truncated state".into()))?;
        match b {
            0xc2 | 0xc3 => {
                self.at += 1;
                Ok(Attr::Bool(b == 0xc3))
            }
            0xcb => {
                self.at += 1;
                Ok(Attr::Float(f64::from_bits(self.be(8)?)))
            }
            0xa0..=0xbf | 0xd9 | 0xda | 0xdb => Ok(Attr::Str(self.text()?)),
            _ => Ok(Attr::Int(self.int()?)),
        }
    }
}

fn rows(r: &mut Reader<'_>) -> R<Vec<(i32, Day)>> {
    let n = r.array()?;
    let mut days = Vec::with_capacity(n);
    for _ in 0..n {
        if r.array()? != 5 {
            return bad("a day row has 5 fields");
        }
        let day = r.day()?;
        days.push((
            day,
            Day {
                purchases: r.int()?,
                purchased: r.int()?,
                refunded: r.int()?,
                interactions: r.int()?,
            },
        ));
    }
    // Python writes them sorted; a state from elsewhere is sorted here
    if days.windows(2).any(|w| w[0].0 >= w[1].0) {
        days.sort_by_key(|&(d, _)| d);
        days.dedup_by_key(|&mut (d, _)| d);
    }
    Ok(days)
}

fn profile(r: &mut Reader<'_>) -> R<Option<Box<Profile>>> {
    if r.peek_nil() {
        return Ok(None);
    }
    if r.array()? != 5 {
        return bad("a profile has 5 fields");
    }
    let time_us = r.int()?;
    let source = r.text()?;
    let id = r.text()?;
    let team = if r.peek_nil() { None } else { Some(r.text()?) };
    let n = r.map()?;
    let mut attributes: Attributes = Vec::with_capacity(n);
    for _ in 0..n {
        let k = r.text()?;
        let v = r.attr()?;
        attributes.push((k, v));
    }
    Ok(Some(Box::new(Profile {
        time_us,
        source,
        id,
        team,
        attributes,
    })))
}

fn tracks(r: &mut Reader<'_>) -> R<Vec<(String, Track)>> {
    let n = r.array()?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        if r.array()? != 5 {
            return bad("a track has 5 fields");
        }
        let key = r.text()?;
        let epoch = r.int()?;
        let since = r.opt_day()?;
        let dropped = r.opt_day()?;
        let m = r.array()?;
        let mut days: Vec<(i32, Aggregates)> = Vec::with_capacity(m);
        for _ in 0..m {
            if r.array()? != 5 {
                return bad("a track row has 5 fields");
            }
            let day = r.day()?;
            days.push((day, (r.int()?, r.int()?, r.int()?, r.int()?)));
        }
        days.sort_by_key(|&(d, _)| d);
        out.push((
            key,
            Track {
                epoch,
                since,
                days,
                dropped,
            },
        ));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

struct Head {
    v2: bool,
    first_day: i32,
    anchor: i32,
    last_purchase: Option<i32>,
    dropped: Option<i32>,
}

fn head(r: &mut Reader<'_>) -> R<Head> {
    let v2 = match r.byte()? {
        VERSION_1 => false,
        VERSION_2 => true,
        other => {
            return Err(BadState(format!(
                "state version {other:#04x} is neither 1 nor 2"
            )))
        }
    };
    let fields = r.array()?;
    if fields != if v2 { 7 } else { 5 } {
        return bad("wrong number of fields in the state");
    }
    Ok(Head {
        v2,
        first_day: r.day()?,
        anchor: r.day()?,
        last_purchase: r.opt_day()?,
        dropped: r.opt_day()?,
    })
}

pub fn decode(data: &[u8], windows: &Windows) -> R<State> {
    let mut r = Reader { data, at: 0 };
    let h = head(&mut r)?;
    let days = rows(&mut r)?;
    let (profile, tracks) = if h.v2 {
        (profile(&mut r)?, tracks(&mut r)?)
    } else {
        (None, Vec::new())
    };
    if r.at != data.len() {
        return bad("trailing bytes after the state");
    }
    let totals = totals_at(&days, h.anchor, windows);
    Ok(State {
        first_day: h.first_day,
        anchor: h.anchor,
        days,
        totals,
        last_purchase: h.last_purchase,
        last_purchase_dropped: h.dropped,
        profile,
        tracks,
    })
}
