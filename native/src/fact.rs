//! An event reduced to what scoring needs: `services/scorer/core/state.py`'s `Fact` and
//! `Profile`. Money in minor units of the base currency; days are local day ordinals
//! (Python's `date.toordinal()`) in the business time zone.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Purchase,
    Refund,
    Interaction,
    Profile,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Purchase => "purchase",
            Kind::Refund => "refund",
            Kind::Interaction => "interaction",
            Kind::Profile => "profile",
        }
    }
}

/// An attribute's value (SPEC §10): a string, a bool, an integer or (from the contract's
/// path only) a float.
#[derive(Clone, Debug, PartialEq)]
pub enum Attr {
    Str(String),
    Bool(bool),
    Int(i64),
    Float(f64),
}

/// In the order the event gave them (Python's dicts keep it).
pub type Attributes = Vec<(String, Attr)>;

#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    /// (event time in µs since the epoch, source, id): the greatest is the latest
    pub time_us: i64,
    pub source: String,
    pub id: String,
    pub team: Option<String>,
    pub attributes: Attributes,
}

impl Profile {
    pub fn later_than(&self, other: &Profile) -> bool {
        (self.time_us, self.source.as_str(), self.id.as_str())
            > (other.time_us, other.source.as_str(), other.id.as_str())
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Fact {
    pub day: i32,
    pub kind: Kind,
    pub amount: i64,
    pub channel: Option<String>,
    pub action: Option<String>,
    pub actor: Option<String>,
    pub attributes: Attributes,
    pub profile: Option<Box<Profile>>,
}
