//! One consumed record (a binary-mode CloudEvent) to what the scorer applies:
//! services/scorer/decoding.py's `decode`, exact or not at all.
//!
//! `decode` accepts a subset of what the Python fast path (services/event_codec.py's
//! `decode_record`, msgspec) accepts, and gives for it exactly what Python's `decode`
//! gives: the same attributes, time, `Fact` and digest. Whatever it is not sure of (an
//! error, an extension attribute, an unusual timestamp, an identifier with Unicode spaces,
//! a duplicated JSON key, money that would round, an unknown currency, a key that is not
//! the subject...) it leaves to Python (`None`), which accepts with its own answer or
//! raises `Poison` with the precise reason. tests/unit/test_native_decode.py holds the two
//! equal on generated records.

use std::borrow::Cow;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};
use sha2::{Digest, Sha256};

use crate::fact::{Attr, Attributes, Fact, Kind, Profile};
use crate::zone::Zone;

const TRANSACTION: &str = "tierstream.transaction";
const INTERACTION: &str = "tierstream.interaction";
const CUSTOMER: &str = "tierstream.customer";
/// `schemas.v1.events.EVENT_ATTRIBUTES_MAX`; a profile may carry up to 64
const EVENT_ATTRIBUTES_MAX: usize = 20;
const PROFILE_ATTRIBUTES_MAX: usize = 64;
/// Python's default decimal context: 28 significant digits
const DECIMAL_DIGITS: u32 = 28;

/// A decoded record: what `services.scorer.decoding.Incoming` holds.
#[derive(Clone, Debug, PartialEq)]
pub struct Decoded {
    pub source: String,
    pub id: String,
    pub subject: String,
    /// UTC µs since the epoch
    pub time_us: i64,
    pub fact: Fact,
    /// sha256 of `f"{type}|{subject}|{time.isoformat()}|".encode() + value`
    pub digest: [u8; 32],
}

/// A rate as Python's `Decimal` holds it: `coefficient * 10**exponent`.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Rate {
    coefficient: u128,
    exponent: i32,
}

/// The scorer's money settings (`Scoring.base_currency` and `Scoring.rates`).
#[derive(Clone, Debug)]
pub struct Money {
    base: String,
    /// by currency; None: a rate this module does not compute with (negative, NaN,
    /// too many digits...): its amounts go to Python
    rates: Vec<(String, Option<Rate>)>,
}

impl Money {
    /// `rates` as `str(Decimal)` spells them ("7.1", "0.0482", "1E+1"); Err for a rate
    /// that is not spelled so. Rates it does not compute with (NaN, negative, too many
    /// digits) are kept as such: their currencies' amounts go to Python.
    pub fn new<B, C, R>(base: B, rates: impl IntoIterator<Item = (C, R)>) -> Result<Money, String>
    where
        B: Into<String>,
        C: Into<String>,
        R: AsRef<str>,
    {
        let rates = rates
            .into_iter()
            .map(|(currency, rate)| {
                let (currency, rate) = (currency.into(), rate.as_ref());
                if !decimal_spelling(rate) {
                    return Err(format!("the rate of {currency} is not a decimal: {rate:?}"));
                }
                Ok((currency, parse_rate(rate)))
            })
            .collect::<Result<_, _>>()?;
        Ok(Money {
            base: base.into(),
            rates,
        })
    }

    /// `services.scorer.core.facts.minor_units` of an amount in cents (less than 10**17);
    /// None for an unknown currency, or when Python's decimal arithmetic would round
    /// anywhere but in the final quantize (or the result would not fit).
    fn minor_units(&self, cents: u64, currency: &str) -> Option<i64> {
        if currency == self.base {
            return i64::try_from(cents).ok();
        }
        let rate = self.rates.iter().find(|(c, _)| c == currency)?.1?;
        // Python multiplies the coefficients; ours of the amount may have more digits than
        // Python's (trailing zeros), so this refuses at least every case where it rounds.
        let product = u128::from(cents).checked_mul(rate.coefficient)?;
        if product >= 10u128.pow(DECIMAL_DIGITS) {
            return None;
        }
        // the product is `product * 10**(exponent - 2)` in currency units: in cents
        // `product * 10**exponent`, quantized half-to-even
        let value = if rate.exponent >= 0 {
            product.checked_mul(10u128.checked_pow(rate.exponent as u32)?)?
        } else {
            let divisor = 10u128.pow(rate.exponent.unsigned_abs());
            let (quotient, remainder) = (product / divisor, product % divisor);
            match (2 * remainder).cmp(&divisor) {
                std::cmp::Ordering::Less => quotient,
                std::cmp::Ordering::Greater => quotient + 1,
                std::cmp::Ordering::Equal => quotient + (quotient & 1),
            }
        };
        i64::try_from(value).ok()
    }
}

/// What `str(Decimal)` may give: `-?[0-9]+(\.[0-9]+)?(E[+-][0-9]+)?`, NaN, sNaN, Infinity.
fn decimal_spelling(text: &str) -> bool {
    let text = text.strip_prefix('-').unwrap_or(text);
    if matches!(text, "NaN" | "sNaN" | "Infinity") {
        return true;
    }
    let (number, exponent) = text.split_once('E').unwrap_or((text, "+0"));
    let (whole, fraction) = number.split_once('.').unwrap_or((number, "0"));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(whole) && digits(fraction) && exponent.strip_prefix(['+', '-']).is_some_and(digits)
}

/// `[0-9]+(\.[0-9]*)?(E[+-]?[0-9]+)?` or `\.[0-9]+...`, not negative, with an exponent in
/// [-30, 18]; anything else (NaN, Infinity, a sign) is None.
fn parse_rate(text: &str) -> Option<Rate> {
    let (number, exponent) = match text.find(['E', 'e']) {
        Some(at) => {
            let e = &text[at + 1..];
            let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
            if digits.is_empty() || digits.len() > 4 || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return None;
            }
            (&text[..at], e.parse::<i32>().ok()?)
        }
        None => (text, 0),
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.len() + fraction.len() == 0
        || whole.len() + fraction.len() > 38
        || !whole
            .bytes()
            .chain(fraction.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let coefficient = whole
        .bytes()
        .chain(fraction.bytes())
        .fold(0u128, |n, b| n * 10 + u128::from(b - b'0'));
    let exponent = exponent - fraction.len() as i32;
    if !(-30..=18).contains(&exponent) {
        return None;
    }
    Some(Rate {
        coefficient,
        exponent,
    })
}

/// The record's event, or None when Python has to decide (see the module's doc).
pub fn decode(
    key: Option<&[u8]>,
    headers: &[(&str, &[u8])],
    value: Option<&[u8]>,
    zone: &Zone,
    money: &Money,
) -> Option<Decoded> {
    let value = value?;
    // decode_record: every ce_* header, UTF-8, the later of two with one name wins; the
    // attributes' struct forbids unknown ones (extensions take the contract's path)
    let mut found: [Option<&str>; 6] = [None; 6];
    for &(name, raw) in headers {
        if let Some(attribute) = name.strip_prefix("ce_") {
            let slot = match attribute {
                "specversion" => 0,
                "id" => 1,
                "source" => 2,
                "type" => 3,
                "subject" => 4,
                "time" => 5,
                _ => return None,
            };
            found[slot] = Some(std::str::from_utf8(raw).ok()?);
        }
    }
    let [Some("1.0"), Some(id), Some(source), Some(kind), Some(subject), Some(time)] = found else {
        return None;
    };
    if !within(id, 256) || !within(source, 256) || !identifier(subject) {
        return None;
    }
    if key? != subject.as_bytes() {
        return None;
    }
    let time = Time::parse(time)?;
    let day = zone.local_day(time.us)?;
    let mut json = Json::new(std::str::from_utf8(value).ok()?);
    let fact = match kind {
        TRANSACTION => json.transaction(day, money)?,
        INTERACTION => json.interaction(day)?,
        CUSTOMER => {
            let (team, attributes) = json.customer()?;
            Fact {
                day,
                kind: Kind::Profile,
                amount: 0,
                channel: None,
                action: None,
                actor: None,
                attributes: Vec::new(),
                profile: Some(Box::new(Profile {
                    time_us: time.us,
                    source: source.to_owned(),
                    id: id.to_owned(),
                    team,
                    attributes,
                })),
            }
        }
        _ => return None,
    };
    json.end()?;
    let mut hash = Sha256::new();
    hash.update(kind.as_bytes());
    hash.update(b"|");
    hash.update(subject.as_bytes());
    hash.update(b"|");
    hash.update(time.isoformat());
    hash.update(b"|");
    hash.update(value);
    Some(Decoded {
        source: source.to_owned(),
        id: id.to_owned(),
        subject: subject.to_owned(),
        time_us: time.us,
        fact,
        digest: hash.finalize().into(),
    })
}

/// msgspec's `min_length=1, max_length=max`: in code points.
#[inline]
fn within(text: &str, max: usize) -> bool {
    !text.is_empty() && (text.len() <= max || text.chars().count() <= max)
}

/// event_codec's `Identifier` (`^\S(?:.*\S)?\Z`, at most 128 code points) for the
/// identifiers this module is sure of: the first and the last character printable ASCII
/// or a letter or digit beyond ASCII (never whitespace, in any Unicode version), no
/// newline (which `.` does not match) in between.
fn identifier(text: &str) -> bool {
    fn solid(c: char) -> bool {
        c.is_ascii_graphic() || (!c.is_ascii() && c.is_alphanumeric())
    }
    within(text, 128)
        && text.chars().next().is_some_and(solid)
        && text.chars().next_back().is_some_and(solid)
        && !text.as_bytes().contains(&b'\n')
}

/// event_codec's `Amount`
/// (`^(?:[1-9][0-9]{0,14}(?:\.[0-9]{1,2})?|0\.(?:[1-9][0-9]?|0[1-9]))\Z`), in cents.
fn amount_cents(text: &str) -> Option<u64> {
    let (whole, fraction) = match text.split_once('.') {
        Some((whole, fraction)) => (whole.as_bytes(), Some(fraction.as_bytes())),
        None => (text.as_bytes(), None),
    };
    if whole.is_empty() || whole.len() > 15 || !whole.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let units = whole
        .iter()
        .fold(0u64, |n, &b| n * 10 + u64::from(b - b'0'));
    let cents = match fraction {
        None => 0,
        Some(f) if (1..=2).contains(&f.len()) && f.iter().all(u8::is_ascii_digit) => {
            let tens = u64::from(f[0] - b'0') * 10;
            tens + f.get(1).map_or(0, |&b| u64::from(b - b'0'))
        }
        Some(_) => return None,
    };
    let valid = if whole[0] == b'0' {
        whole.len() == 1 && fraction.is_some() && cents > 0
    } else {
        true
    };
    valid.then_some(units * 100 + cents)
}

fn currency(text: &str) -> bool {
    text.len() == 3 && text.bytes().all(|b| b.is_ascii_uppercase())
}

/// An RFC 3339 timestamp of the one form this module is sure msgspec reads as it does:
/// `YYYY-MM-DDTHH:MM:SS[.f{1,6}](Z|±HH:MM)`.
struct Time {
    us: i64,
    /// Python's `isoformat()` of the aware datetime msgspec makes of it
    iso: [u8; 32],
    iso_len: usize,
}

impl Time {
    fn parse(text: &str) -> Option<Time> {
        let b = text.as_bytes();
        if b.len() < 20 {
            return None;
        }
        let number = |from: usize, to: usize| -> Option<i64> {
            b[from..to].iter().try_fold(0i64, |n, &c| {
                c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0'))
            })
        };
        if b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
            return None;
        }
        let (year, month, day) = (number(0, 4)?, number(5, 7)?, number(8, 10)?);
        let (hour, minute, second) = (number(11, 13)?, number(14, 16)?, number(17, 19)?);
        if year == 0
            || !(1..=12).contains(&month)
            || day == 0
            || day > days_in_month(year, month)
            || hour > 23
            || minute > 59
            || second > 59
        {
            return None;
        }
        let mut at = 19;
        let mut micro = 0;
        if b[at] == b'.' {
            let start = at + 1;
            at = start;
            while at < b.len() && b[at].is_ascii_digit() {
                at += 1;
            }
            let digits = at - start;
            if digits == 0 || digits > 6 {
                return None;
            }
            micro = number(start, at)? * 10i64.pow(6 - digits as u32);
        }
        let mut iso = [0u8; 32];
        iso[..19].copy_from_slice(&b[..19]);
        let mut len = 19;
        if micro != 0 {
            iso[19] = b'.';
            let mut rest = micro;
            for i in (20..26).rev() {
                iso[i] = b'0' + (rest % 10) as u8;
                rest /= 10;
            }
            len = 26;
        }
        let zone = &b[at..];
        let offset = match zone {
            b"Z" => 0,
            [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
                let (hours, minutes) = (number(at + 1, at + 3)?, number(at + 4, at + 6)?);
                if hours > 23 || minutes > 59 {
                    return None;
                }
                let seconds = hours * 3600 + minutes * 60;
                if *sign == b'-' {
                    -seconds
                } else {
                    seconds
                }
            }
            _ => return None,
        };
        // msgspec gives `timezone.utc` for Z, +00:00 and -00:00, spelled +00:00
        iso[len..len + 6].copy_from_slice(if offset == 0 { b"+00:00" } else { zone });
        len += 6;
        let seconds =
            days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
                - offset;
        Some(Time {
            us: seconds * 1_000_000 + micro,
            iso,
            iso_len: len,
        })
    }

    fn isoformat(&self) -> &[u8] {
        &self.iso[..self.iso_len]
    }
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// A strict JSON reader (RFC 8259) of the three data structs, as msgspec decodes them:
/// unknown fields, wrong types, floats, integers beyond 64 bits and anything nested in
/// attributes refuse; so do duplicated keys (msgspec keeps the last, which is not worth
/// following) and lone surrogates.
struct Json<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Json<'a> {
    fn new(text: &'a str) -> Json<'a> {
        Json { text, at: 0 }
    }

    #[inline]
    fn peek(&mut self) -> Option<u8> {
        let bytes = self.text.as_bytes();
        while let Some(&b) = bytes.get(self.at) {
            if matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
                self.at += 1;
            } else {
                return Some(b);
            }
        }
        None
    }

    #[inline]
    fn eat(&mut self, expected: u8) -> Option<()> {
        (self.peek()? == expected).then(|| self.at += 1)
    }

    fn end(&mut self) -> Option<()> {
        self.peek().is_none().then_some(())
    }

    fn literal(&mut self, word: &str) -> Option<()> {
        self.text[self.at..]
            .starts_with(word)
            .then(|| self.at += word.len())
    }

    fn string(&mut self) -> Option<Cow<'a, str>> {
        self.eat(b'"')?;
        let bytes = self.text.as_bytes();
        let start = self.at;
        loop {
            match *bytes.get(self.at)? {
                b'"' => {
                    self.at += 1;
                    return Some(Cow::Borrowed(&self.text[start..self.at - 1]));
                }
                b'\\' => break,
                0..=0x1f => return None,
                _ => self.at += 1,
            }
        }
        let mut out = String::with_capacity(self.at - start + 16);
        out.push_str(&self.text[start..self.at]);
        loop {
            match *bytes.get(self.at)? {
                b'"' => {
                    self.at += 1;
                    return Some(Cow::Owned(out));
                }
                b'\\' => {
                    let escaped = *bytes.get(self.at + 1)?;
                    self.at += 2;
                    out.push(match escaped {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let unit = self.hex4()?;
                            let code = match unit {
                                0xD800..=0xDBFF => {
                                    if bytes.get(self.at..self.at + 2)? != b"\\u" {
                                        return None;
                                    }
                                    self.at += 2;
                                    let low = self.hex4()?;
                                    if !(0xDC00..=0xDFFF).contains(&low) {
                                        return None;
                                    }
                                    0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
                                }
                                0xDC00..=0xDFFF => return None,
                                _ => unit,
                            };
                            char::from_u32(code)?
                        }
                        _ => return None,
                    });
                }
                0..=0x1f => return None,
                _ => {
                    let run = self.at;
                    while let Some(&b) = bytes.get(self.at) {
                        if b == b'"' || b == b'\\' || b < 0x20 {
                            break;
                        }
                        self.at += 1;
                    }
                    out.push_str(&self.text[run..self.at]);
                }
            }
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.text.as_bytes().get(self.at..self.at + 4)?;
        self.at += 4;
        digits
            .iter()
            .try_fold(0u32, |n, &b| Some(n * 16 + (b as char).to_digit(16)?))
    }

    /// `{"key": value, ...}`, each value read by `field`
    fn object(
        &mut self,
        mut field: impl FnMut(&mut Json<'a>, Cow<'a, str>) -> Option<()>,
    ) -> Option<()> {
        self.eat(b'{')?;
        if self.peek()? == b'}' {
            self.at += 1;
            return Some(());
        }
        loop {
            let key = self.string()?;
            self.eat(b':')?;
            field(self, key)?;
            match self.peek()? {
                b',' => self.at += 1,
                b'}' => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// an `Identifier | None`
    fn optional_identifier(&mut self) -> Option<Option<String>> {
        if self.peek()? == b'n' {
            self.literal("null")?;
            return Some(None);
        }
        let text = self.string()?;
        identifier(&text).then(|| Some(text.into_owned()))
    }

    /// `dict[AttributeName, str | bool | Int64]` of at most `max` entries
    fn attributes(&mut self, max: usize) -> Option<Attributes> {
        let mut out: Attributes = Vec::new();
        self.object(|json, name| {
            if out.len() == max || !within(&name, 64) || out.iter().any(|(n, _)| **n == *name) {
                return None;
            }
            let value = match json.peek()? {
                b'"' => Attr::Str(json.string()?.into_owned()),
                b't' => json.literal("true").map(|()| Attr::Bool(true))?,
                b'f' => json.literal("false").map(|()| Attr::Bool(false))?,
                b'-' | b'0'..=b'9' => Attr::Int(json.integer()?),
                _ => return None,
            };
            out.push((name.into_owned(), value));
            Some(())
        })?;
        Some(out)
    }

    /// a JSON number that is an integer of 64 bits (no fraction, no exponent)
    fn integer(&mut self) -> Option<i64> {
        let bytes = self.text.as_bytes();
        let negative = bytes[self.at] == b'-';
        if negative {
            self.at += 1;
        }
        let start = self.at;
        match bytes.get(self.at)? {
            b'0' => self.at += 1,
            b'1'..=b'9' => {
                while bytes.get(self.at).is_some_and(u8::is_ascii_digit) {
                    self.at += 1;
                }
            }
            _ => return None,
        }
        if matches!(bytes.get(self.at), Some(b'0'..=b'9' | b'.' | b'e' | b'E')) {
            return None;
        }
        let digits = &bytes[start..self.at];
        if digits.len() > 19 {
            return None;
        }
        let magnitude = digits
            .iter()
            .fold(0u64, |n, &b| n * 10 + u64::from(b - b'0'));
        if negative {
            0i64.checked_sub_unsigned(magnitude)
        } else {
            i64::try_from(magnitude).ok()
        }
    }

    /// event_codec's `TransactionData`, as a fact
    fn transaction(&mut self, day: i32, money: &Money) -> Option<Fact> {
        let (mut kind, mut cents, mut currency_found) = (None, None, None);
        let mut attributes = Vec::new();
        let mut seen = 0u8;
        self.object(|json, key| {
            let bit = match &*key {
                "kind" => {
                    kind = Some(match &*json.string()? {
                        "purchase" => Kind::Purchase,
                        "refund" => Kind::Refund,
                        _ => return None,
                    });
                    1
                }
                "amount" => {
                    cents = Some(amount_cents(&json.string()?)?);
                    2
                }
                "currency" => {
                    let text = json.string()?;
                    if !currency(&text) {
                        return None;
                    }
                    currency_found = Some(text);
                    4
                }
                "order_id" => {
                    if !identifier(&json.string()?) {
                        return None;
                    }
                    8
                }
                "attributes" => {
                    attributes = json.attributes(EVENT_ATTRIBUTES_MAX)?;
                    16
                }
                _ => return None,
            };
            once(&mut seen, bit)
        })?;
        if seen & 15 != 15 {
            return None;
        }
        let amount = money.minor_units(cents?, &currency_found?)?;
        Some(Fact {
            day,
            kind: kind?,
            amount,
            channel: None,
            action: None,
            actor: None,
            attributes,
            profile: None,
        })
    }

    /// event_codec's `InteractionData`, as a fact
    fn interaction(&mut self, day: i32) -> Option<Fact> {
        let (mut channel, mut action, mut actor) = (None, None, None);
        let mut attributes = Vec::new();
        let mut seen = 0u8;
        self.object(|json, key| {
            let bit = match &*key {
                "channel" => {
                    let text = json.string()?;
                    let known = [
                        "web", "email", "call", "meeting", "ticket", "chat", "event", "other",
                    ];
                    if !known.contains(&&*text) {
                        return None;
                    }
                    channel = Some(text.into_owned());
                    1
                }
                "action" => {
                    let text = json.string()?;
                    if !within(&text, 200) {
                        return None;
                    }
                    action = Some(text.into_owned());
                    2
                }
                "actor" => {
                    actor = json.optional_identifier()?;
                    4
                }
                "attributes" => {
                    attributes = json.attributes(EVENT_ATTRIBUTES_MAX)?;
                    8
                }
                _ => return None,
            };
            once(&mut seen, bit)
        })?;
        Some(Fact {
            day,
            kind: Kind::Interaction,
            amount: 0,
            channel: Some(channel?),
            action: Some(action?),
            actor,
            attributes,
            profile: None,
        })
    }

    /// event_codec's `CustomerData`: (team, attributes)
    fn customer(&mut self) -> Option<(Option<String>, Attributes)> {
        let mut team = None;
        let mut attributes = Vec::new();
        let mut seen = 0u8;
        self.object(|json, key| {
            let bit = match &*key {
                "name" => {
                    if !within(&json.string()?, 200) {
                        return None;
                    }
                    1
                }
                "owner_id" => {
                    if !identifier(&json.string()?) {
                        return None;
                    }
                    2
                }
                "team" => {
                    team = json.optional_identifier()?;
                    4
                }
                "attributes" => {
                    attributes = json.attributes(PROFILE_ATTRIBUTES_MAX)?;
                    8
                }
                _ => return None,
            };
            once(&mut seen, bit)
        })?;
        (seen & 3 == 3).then_some((team, attributes))
    }
}

/// marks a struct field seen; None the second time
#[inline]
fn once(seen: &mut u8, bit: u8) -> Option<()> {
    if *seen & bit != 0 {
        return None;
    }
    *seen |= bit;
    Some(())
}

/// `services.scorer.decoding.decode`'s fast path, for Python (the tests, measurements):
/// `Decoder(offsets, until, base_currency, rates)` with `offsets, until =
/// services.scorer.compiled_zone.offsets(zone)` and rates as `str(Decimal)`.
#[pyclass(frozen, module = "tierstream_native")]
pub struct Decoder {
    zone: Zone,
    money: Money,
}

#[pymethods]
impl Decoder {
    #[new]
    fn new(
        offsets: Vec<(i64, i64)>,
        until: i64,
        base_currency: &str,
        rates: &Bound<'_, PyDict>,
    ) -> PyResult<Decoder> {
        let rates = rates
            .iter()
            .map(|(currency, rate)| Ok((currency.extract::<String>()?, rate.extract::<String>()?)))
            .collect::<PyResult<Vec<_>>>()?;
        Ok(Decoder {
            zone: Zone::new(offsets, until),
            money: Money::new(base_currency, rates).map_err(PyValueError::new_err)?,
        })
    }

    /// (source, id, subject, time_us, day, kind, amount, channel, action, actor,
    /// attributes, profile, digest), profile None or (time_us, source, id, team,
    /// attributes), attributes [(name, value)]; or None when Python has to decide
    #[pyo3(signature = (key, headers, value))]
    fn decode<'py>(
        &self,
        py: Python<'py>,
        key: Option<&[u8]>,
        headers: &Bound<'py, PyAny>,
        value: Option<&[u8]>,
    ) -> PyResult<Option<Bound<'py, PyTuple>>> {
        let Some(decoded) = self.run(key, headers, value) else {
            return Ok(None);
        };
        let fact = &decoded.fact;
        let profile = match &fact.profile {
            None => py.None().into_bound(py),
            Some(p) => PyTuple::new(
                py,
                [
                    p.time_us.into_pyobject(py)?.into_any(),
                    PyString::new(py, &p.source).into_any(),
                    PyString::new(py, &p.id).into_any(),
                    optional(py, &p.team),
                    attributes(py, &p.attributes)?,
                ],
            )?
            .into_any(),
        };
        let items = [
            PyString::new(py, &decoded.source).into_any(),
            PyString::new(py, &decoded.id).into_any(),
            PyString::new(py, &decoded.subject).into_any(),
            decoded.time_us.into_pyobject(py)?.into_any(),
            fact.day.into_pyobject(py)?.into_any(),
            PyString::new(py, fact.kind.name()).into_any(),
            fact.amount.into_pyobject(py)?.into_any(),
            optional(py, &fact.channel),
            optional(py, &fact.action),
            optional(py, &fact.actor),
            attributes(py, &fact.attributes)?,
            profile,
            PyBytes::new(py, &decoded.digest).into_any(),
        ];
        Ok(Some(PyTuple::new(py, items)?))
    }

    /// How many of the records, (key, headers, value) each, `decode` takes (nothing is
    /// built for Python: the time of the decoding itself).
    fn count(&self, records: &Bound<'_, PyAny>) -> PyResult<usize> {
        let mut accepted = 0;
        for record in records.try_iter()? {
            let record = record?;
            let record = record.downcast::<PyTuple>()?;
            let (key, headers, value) = (
                record.get_item(0)?,
                record.get_item(1)?,
                record.get_item(2)?,
            );
            let key = key.downcast::<PyBytes>().ok().map(|b| b.as_bytes());
            let value = value.downcast::<PyBytes>().ok().map(|b| b.as_bytes());
            if self.run(key, &headers, value).is_some() {
                accepted += 1;
            }
        }
        Ok(accepted)
    }
}

impl Decoder {
    fn run(
        &self,
        key: Option<&[u8]>,
        headers: &Bound<'_, PyAny>,
        value: Option<&[u8]>,
    ) -> Option<Decoded> {
        // anything but a list of (str, bytes) (a name with a lone surrogate...): Python decides
        let pairs: Vec<(Bound<'_, PyString>, Bound<'_, PyBytes>)> = headers.extract().ok()?;
        let mut borrowed: Vec<(&str, &[u8])> = Vec::with_capacity(pairs.len());
        for (name, raw) in &pairs {
            borrowed.push((name.to_str().ok()?, raw.as_bytes()));
        }
        decode(key, &borrowed, value, &self.zone, &self.money)
    }
}

fn optional<'py>(py: Python<'py>, text: &Option<String>) -> Bound<'py, PyAny> {
    match text {
        Some(text) => PyString::new(py, text).into_any(),
        None => py.None().into_bound(py),
    }
}

fn attributes<'py>(py: Python<'py>, attributes: &Attributes) -> PyResult<Bound<'py, PyAny>> {
    let items = attributes
        .iter()
        .map(|(name, value)| {
            let value = match value {
                Attr::Str(s) => PyString::new(py, s).into_any(),
                Attr::Bool(b) => b.into_pyobject(py)?.to_owned().into_any(),
                Attr::Int(i) => i.into_pyobject(py)?.into_any(),
                Attr::Float(f) => f.into_pyobject(py)?.into_any(),
            };
            PyTuple::new(py, [PyString::new(py, name).into_any(), value])
        })
        .collect::<PyResult<Vec<_>>>()?;
    Ok(PyList::new(py, items)?.into_any())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_rounds_half_to_even_once() {
        let money = Money::new("CNY", [("USD", "7.1"), ("EUR", "0.5"), ("XXX", "NaN")]).unwrap();
        assert!(Money::new("CNY", [("USD", "7,1")]).is_err());
        assert_eq!(money.minor_units(1000, "USD"), Some(7100));
        assert_eq!(money.minor_units(5, "EUR"), Some(2));
        assert_eq!(money.minor_units(15, "EUR"), Some(8));
        assert_eq!(money.minor_units(15, "CNY"), Some(15));
        assert_eq!(money.minor_units(15, "XXX"), None);
        assert_eq!(money.minor_units(15, "GBP"), None);
        assert_eq!(
            parse_rate("1E+1"),
            Some(Rate {
                coefficient: 1,
                exponent: 1
            })
        );
        assert_eq!(
            parse_rate("0.0482"),
            Some(Rate {
                coefficient: 482,
                exponent: -4
            })
        );
        assert_eq!(parse_rate("-1"), None);
    }

    #[test]
    fn times_and_amounts() {
        let t = Time::parse("2026-11-20T10:00:00.5+08:00").unwrap();
        assert_eq!(t.isoformat(), b"2026-11-20T10:00:00.500000+08:00");
        assert_eq!(t.us, 1_795_140_000_500_000);
        let z = Time::parse("1970-01-01T00:00:00-00:00").unwrap();
        assert_eq!(
            (z.us, z.isoformat()),
            (0, &b"1970-01-01T00:00:00+00:00"[..])
        );
        assert!(Time::parse("2026-02-29T10:00:00Z").is_none());
        assert_eq!(amount_cents("0.1"), Some(10));
        assert_eq!(amount_cents("1299.00"), Some(129_900));
        assert_eq!(amount_cents("0.00"), None);
        assert_eq!(amount_cents("01"), None);
        assert_eq!(amount_cents("1."), None);
    }
}

#[cfg(test)]
mod speed {
    use super::*;

    /// `cargo test --release --lib event::speed -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn decode_speed() {
        let zone = Zone::new(vec![(-2_208_988_800, 28_800)], 7_258_118_400);
        let money = Money::new("CNY", [("USD", "7.1")]).unwrap();
        let value = br#"{"kind":"purchase","amount":"1808.77","currency":"CNY","order_id":"O12345","attributes":{"line":"hardware"}}"#;
        let headers: Vec<(&str, &[u8])> = vec![
            ("ce_specversion", b"1.0"),
            ("ce_id", b"w-12345"),
            ("ce_source", b"erp/replay"),
            ("ce_type", b"tierstream.transaction"),
            ("ce_subject", b"W-01234"),
            ("ce_time", b"2024-03-05T13:20:00+00:00"),
            ("content-type", b"application/json"),
        ];
        let n = 1_000_000;
        let start = std::time::Instant::now();
        let mut days = 0i64;
        for _ in 0..n {
            let d = decode(Some(b"W-01234"), &headers, Some(value), &zone, &money).unwrap();
            days += i64::from(std::hint::black_box(d).fact.day);
        }
        let per = start.elapsed().as_secs_f64() / f64::from(n) * 1e6;
        println!("decode: {per:.3} µs per record ({days})");
    }
}
