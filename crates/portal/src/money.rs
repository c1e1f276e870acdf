//! Money as whole fen (0.01 yuan) in an `i64`: never floating point. In JSON it is a decimal
//! string such as `"1250.50"`; on input a string or a number with at most two decimals.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Yuan(pub i64);

impl Yuan {
    /// The largest amount the portal takes from a request: any share of it (whole per cent)
    /// still fits in 64 bits of fen, so no arithmetic on an amount can wrap.
    pub const MAX: Yuan = Yuan(i64::MAX / 100);

    pub fn fen(self) -> i64 {
        self.0
    }

    /// Whole yuan, or `None` when that many do not fit.
    pub fn from_yuan(yuan: i64) -> Option<Yuan> {
        yuan.checked_mul(100).map(Yuan)
    }

    pub fn checked_add(self, other: Yuan) -> Option<Yuan> {
        self.0.checked_add(other.0).map(Yuan)
    }

    /// `pct` per cent of the amount, rounded down to whole fen; `None` on overflow.
    pub fn checked_share(self, pct: i16) -> Option<Yuan> {
        self.0.checked_mul(i64::from(pct)).map(|v| Yuan(v / 100))
    }
}

impl fmt::Display for Yuan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02}", abs / 100, abs % 100)
    }
}

/// Why an amount did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("amount {given:?}: {why}")]
pub struct AmountError {
    given: String,
    why: &'static str,
}

impl FromStr for Yuan {
    type Err = AmountError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let fail = |why| AmountError {
            given: s.to_owned(),
            why,
        };
        let t = s.trim();
        let (negative, digits) = match t.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, t),
        };
        let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
        if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
            return Err(fail("expected yuan as digits, e.g. 1250.50"));
        }
        if frac.len() > 2 || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(fail("at most two decimals (whole fen)"));
        }
        let whole: i64 = whole.parse().map_err(|_| fail("too large"))?;
        let frac: i64 = format!("{frac:0<2}")
            .parse()
            .map_err(|_| fail("bad decimals"))?;
        let fen = whole
            .checked_mul(100)
            .and_then(|w| w.checked_add(frac))
            .ok_or_else(|| fail("too large"))?;
        Ok(Yuan(if negative { -fen } else { fen }))
    }
}

impl Serialize for Yuan {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Yuan {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Number(serde_json::Number),
        }
        let text = match Raw::deserialize(d)? {
            Raw::Text(t) => t,
            Raw::Number(n) => n.to_string(),
        };
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_whole_fen() {
        assert_eq!("1250.5".parse::<Yuan>().unwrap(), Yuan(125_050));
        assert_eq!("0.07".parse::<Yuan>().unwrap(), Yuan(7));
        assert_eq!("-3".parse::<Yuan>().unwrap(), Yuan(-300));
        assert_eq!(Yuan(125_050).to_string(), "1250.50");
        assert_eq!(Yuan(-7).to_string(), "-0.07");
        let v: Yuan = serde_json::from_str("99.99").unwrap();
        assert_eq!(v, Yuan(9_999));
        assert_eq!(serde_json::to_string(&Yuan(100)).unwrap(), "\"1.00\"");
    }

    #[test]
    fn refuses_what_is_not_whole_fen() {
        for bad in [
            "1.234",
            "",
            "abc",
            "1e3",
            "1.2.3",
            "99999999999999999999",
            ". 5",
        ] {
            assert!(bad.parse::<Yuan>().is_err(), "{bad:?} parsed");
        }
        assert!(serde_json::from_str::<Yuan>("0.001").is_err());
    }

    #[test]
    fn arithmetic_never_wraps() {
        assert_eq!(Yuan::from_yuan(1_250), Some(Yuan(125_000)));
        assert_eq!(Yuan::from_yuan(i64::MAX / 10), None);
        assert_eq!(Yuan(1_000).checked_share(30), Some(Yuan(300)));
        assert_eq!(Yuan(768_614_336_404_564_651).checked_share(30), None);
        assert_eq!(Yuan::MAX.checked_share(100), Some(Yuan(Yuan::MAX.0)));
        assert_eq!(Yuan(i64::MAX).checked_add(Yuan(1)), None);
        assert_eq!(Yuan::MAX.to_string(), "922337203685477.58");
    }

    proptest::proptest! {
        #[test]
        fn round_trips(fen in -1_000_000_000_000i64..1_000_000_000_000) {
            let text = Yuan(fen).to_string();
            proptest::prop_assert_eq!(text.parse::<Yuan>().unwrap(), Yuan(fen));
        }

        #[test]
        fn never_panics(s in ".{0,24}") {
            let _ = s.parse::<Yuan>();
        }
    }
}
