//! Resource quantities (`500m`, `128Mi`, `4`) as the API server's
//! `resource.Quantity`: exact arithmetic in milli-units and the canonical
//! string form (`4000m` prints `4`, `1024Mi` prints `1Gi`), which appears
//! in quota and LimitRange messages and in `ResourceQuota.status`.
//! See k8s.io/apimachinery/pkg/api/resource/quantity.go.

use std::cmp::Ordering;

/// How a quantity prints: the suffix family of the value it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    DecimalSi,
    BinarySi,
}

/// A quantity in thousandths of a unit (so `100m` cpu is 100).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity {
    pub milli: i128,
    pub format: Format,
}

impl Default for Quantity {
    fn default() -> Self {
        Quantity::zero()
    }
}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.milli.cmp(&other.milli))
    }
}

const BINARY: [(&str, u32); 6] = [
    ("Ki", 10),
    ("Mi", 20),
    ("Gi", 30),
    ("Ti", 40),
    ("Pi", 50),
    ("Ei", 60),
];
const DECIMAL: [(&str, u32); 6] = [
    ("k", 3),
    ("M", 6),
    ("G", 9),
    ("T", 12),
    ("P", 15),
    ("E", 18),
];

impl Quantity {
    pub fn zero() -> Quantity {
        Quantity {
            milli: 0,
            format: Format::DecimalSi,
        }
    }

    pub fn from_int(n: i64) -> Quantity {
        Quantity {
            milli: n as i128 * 1000,
            format: Format::DecimalSi,
        }
    }

    /// Parses the quantity grammar (`<signedNumber><suffix>`); `None` when
    /// the string is not a quantity. Precision below a milli-unit rounds up,
    /// as the API server does for values it stores.
    pub fn parse(s: &str) -> Option<Quantity> {
        let s = s.trim();
        if s.is_empty() {
            return None;
        }
        let (neg, body) = match s.as_bytes()[0] {
            b'-' => (true, &s[1..]),
            b'+' => (false, &s[1..]),
            _ => (false, s),
        };
        let num_end = body
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(body.len());
        let (num, suffix) = body.split_at(num_end);
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return None;
        }
        let (int_part, frac_part) = num.split_once('.').unwrap_or((num, ""));
        // Value = digits * 10^(exp10 - frac_len) * 2^exp2
        let digits: String = format!("{int_part}{frac_part}");
        let mantissa: i128 = if digits.is_empty() {
            0
        } else {
            digits.parse().ok()?
        };
        let (exp10, exp2, format): (i32, u32, Format) = match suffix {
            "" => (0, 0, Format::DecimalSi),
            "m" => (-3, 0, Format::DecimalSi),
            "u" => (-6, 0, Format::DecimalSi),
            "n" => (-9, 0, Format::DecimalSi),
            s if s.starts_with(['e', 'E']) => (s[1..].parse().ok()?, 0, Format::DecimalSi),
            s => {
                if let Some((_, p)) = BINARY.iter().find(|(n, _)| *n == s) {
                    (0, *p, Format::BinarySi)
                } else if let Some((_, p)) = DECIMAL.iter().find(|(n, _)| *n == s) {
                    (*p as i32, 0, Format::DecimalSi)
                } else {
                    return None;
                }
            }
        };
        // Scale to milli-units: multiply by 10^(exp10 + 3 - frac_len).
        let scale = exp10 + 3 - frac_part.len() as i32;
        let mut v = mantissa.checked_mul(1i128.checked_shl(exp2)?)?;
        if scale >= 0 {
            v = v.checked_mul(10i128.checked_pow(scale as u32)?)?;
        } else {
            let d = 10i128.checked_pow((-scale) as u32)?;
            v = (v + d - 1) / d;
        }
        Some(Quantity {
            milli: if neg { -v } else { v },
            format,
        })
    }

    /// `a.Add(b)`: the receiver's format wins (zero takes the other's).
    pub fn plus(self, other: Quantity) -> Quantity {
        let format = if self.milli == 0 {
            other.format
        } else {
            self.format
        };
        Quantity {
            milli: self.milli + other.milli,
            format,
        }
    }

    pub fn minus(self, other: Quantity) -> Quantity {
        Quantity {
            milli: self.milli - other.milli,
            format: self.format,
        }
    }

    pub fn is_zero(&self) -> bool {
        self.milli == 0
    }

    /// The canonical string, as `Quantity.String()`.
    pub fn canonical(&self) -> String {
        let neg = self.milli < 0;
        let m = self.milli.unsigned_abs();
        let sign = if neg { "-" } else { "" };
        if m == 0 {
            return "0".into();
        }
        if !m.is_multiple_of(1000) {
            return format!("{sign}{m}m");
        }
        let n = m / 1000;
        if self.format == Format::BinarySi && n >= 1024 {
            for (suffix, p) in BINARY.iter().rev() {
                let unit = 1u128 << p;
                if n.is_multiple_of(unit) {
                    return format!("{sign}{}{suffix}", n / unit);
                }
            }
            return format!("{sign}{n}");
        }
        for (suffix, p) in DECIMAL.iter().rev() {
            let unit = 10u128.pow(*p);
            if n.is_multiple_of(unit) {
                return format!("{sign}{}{suffix}", n / unit);
            }
        }
        format!("{sign}{n}")
    }
}

impl std::fmt::Display for Quantity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.canonical())
    }
}

/// A quantity from a JSON value (strings or numbers, as the API accepts both).
pub fn from_json(v: &serde_json::Value) -> Option<Quantity> {
    match v {
        serde_json::Value::String(s) => Quantity::parse(s),
        serde_json::Value::Number(n) => Quantity::parse(&n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_canonical_forms_match_the_api_server() {
        for (input, canonical) in [
            ("100m", "100m"),
            ("4000m", "4"),
            ("0.5", "500m"),
            ("1.5Gi", "1536Mi"),
            ("1024Mi", "1Gi"),
            ("128Mi", "128Mi"),
            ("1000", "1k"),
            ("1e3", "1k"),
            ("2G", "2G"),
            ("512", "512"),
            ("0", "0"),
            ("-1", "-1"),
        ] {
            let q = Quantity::parse(input).unwrap_or_else(|| panic!("{input}"));
            assert_eq!(q.canonical(), canonical, "{input}");
        }
        for bad in ["", "abc", "1.2.3", "5Zi", "."] {
            assert!(Quantity::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn sums_keep_the_first_operands_format() {
        let a = Quantity::parse("128Mi").unwrap();
        let b = Quantity::parse("128Mi").unwrap();
        assert_eq!(a.plus(b).canonical(), "256Mi");
        let c = Quantity::zero().plus(Quantity::parse("100m").unwrap());
        assert_eq!(c.plus(Quantity::parse("900m").unwrap()).canonical(), "1");
        assert!(Quantity::parse("1Gi").unwrap() > Quantity::parse("1G").unwrap());
    }
}
