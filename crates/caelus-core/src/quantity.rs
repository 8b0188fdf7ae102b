//! Kubernetes resource quantities (`500m`, `1Gi`, `1e3`, `2E`), parsed once
//! for every rule that compares them: drift (the API server prints
//! quantities in canonical form, so `0.5` comes back as `500m`) and the
//! data-continuity check (a volume may grow, never shrink).
//!
//! The grammar is the API server's (`k8s.io/apimachinery/pkg/api/resource`,
//! `quantity.go`): a signed decimal number followed by a binary suffix
//! (`Ki` … `Ei`), a decimal SI suffix (`n`, `u`, `m`, ``, `k`, `M`, `G`, `T`,
//! `P`, `E`) or a decimal exponent (`e3`, `E-2`). `E` alone is exa; `E`
//! followed by a number is an exponent. Values are kept exactly, in
//! nano-units rounded up as the server rounds anything finer than `1n`.

use std::cmp::Ordering;

/// A parsed quantity, exact to one nano-unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Quantity {
    nanos: i128,
}

impl Quantity {
    /// The value as a float (for sizes in messages and coarse comparisons).
    pub fn as_f64(self) -> f64 {
        self.nanos as f64 / 1e9
    }

    pub fn nanos(self) -> i128 {
        self.nanos
    }
}

/// Parses a quantity; `None` for anything the API server would refuse.
pub fn parse(s: &str) -> Option<Quantity> {
    let s = s.trim();
    let (negative, rest) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let number_len = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(number_len);
    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    if !frac_part.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let (exp10, exp2) = suffix_exponents(suffix)?;
    // mantissa * 10^(exp10 - frac digits) * 2^exp2, in nanos (10^9).
    let digits = format!("{int_part}{frac_part}");
    let digits = digits.trim_start_matches('0');
    if digits.len() > 36 {
        return None;
    }
    let mantissa: i128 = if digits.is_empty() {
        0
    } else {
        digits.parse().ok()?
    };
    let scale = exp10 + 9 - frac_part.len() as i32;
    let mut nanos = mantissa.checked_mul(1i128.checked_shl(exp2)?)?;
    match scale.cmp(&0) {
        Ordering::Equal => {}
        Ordering::Greater => nanos = nanos.checked_mul(10i128.checked_pow(scale as u32)?)?,
        Ordering::Less => {
            // Finer than a nano-unit: rounded up, as the API server does.
            let div = 10i128.checked_pow(scale.unsigned_abs())?;
            nanos = (nanos + div - 1) / div;
        }
    }
    Some(Quantity {
        nanos: if negative { -nanos } else { nanos },
    })
}

/// `(power of ten, power of two)` of a suffix.
fn suffix_exponents(suffix: &str) -> Option<(i32, u32)> {
    Some(match suffix {
        "" => (0, 0),
        "n" => (-9, 0),
        "u" => (-6, 0),
        "m" => (-3, 0),
        "k" => (3, 0),
        "M" => (6, 0),
        "G" => (9, 0),
        "T" => (12, 0),
        "P" => (15, 0),
        "E" => (18, 0),
        "Ki" => (0, 10),
        "Mi" => (0, 20),
        "Gi" => (0, 30),
        "Ti" => (0, 40),
        "Pi" => (0, 50),
        "Ei" => (0, 60),
        _ => {
            let exponent = suffix
                .strip_prefix('e')
                .or_else(|| suffix.strip_prefix('E'))?;
            let digits = exponent.trim_start_matches(['+', '-']);
            if digits.is_empty()
                || !digits.chars().all(|c| c.is_ascii_digit())
                || exponent.len() - digits.len() > 1
            {
                return None;
            }
            let e: i32 = exponent.parse().ok()?;
            if !(-30..=30).contains(&e) {
                return None;
            }
            (e, 0)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Option<i128> {
        parse(s).map(Quantity::nanos)
    }

    #[test]
    fn every_suffix_form_the_api_server_accepts() {
        let g = 1_000_000_000i128;
        let table: &[(&str, i128)] = &[
            ("1", g),
            ("0.5", g / 2),
            (".5", g / 2),
            ("500m", g / 2),
            ("250u", 250_000),
            ("100n", 100),
            ("1k", 1000 * g),
            ("1M", 1_000_000 * g),
            ("2G", 2_000_000_000 * g),
            ("1T", 10i128.pow(12) * g),
            ("1P", 10i128.pow(15) * g),
            ("1E", 10i128.pow(18) * g),
            ("1Ki", 1024 * g),
            ("1.5Gi", 1_610_612_736 * g),
            ("1Ei", (1i128 << 60) * g),
            ("1e3", 1000 * g),
            ("1E3", 1000 * g),
            ("5e-3", 5_000_000),
            ("1e+2", 100 * g),
            ("-2", -2 * g),
            ("+2", 2 * g),
            ("0", 0),
        ];
        for (text, nanos) in table {
            assert_eq!(n(text), Some(*nanos), "{text}");
        }
    }

    #[test]
    fn equal_values_in_different_forms_compare_equal() {
        assert_eq!(parse("0.5"), parse("500m"));
        assert_eq!(parse("1000m"), parse("1"));
        assert_eq!(parse("1e3"), parse("1k"));
        assert_eq!(parse("1024Mi"), parse("1Gi"));
        assert_eq!(parse("1000u"), parse("1m"));
        assert!(parse("1Gi") > parse("1G"));
    }

    #[test]
    fn finer_than_a_nano_unit_rounds_up() {
        assert_eq!(n("0.1n"), Some(1));
        assert_eq!(n("1.5n"), Some(2));
    }

    #[test]
    fn malformed_quantities_are_refused() {
        for bad in [
            "", "abc", "1Zi", "1e", "1ee3", "1.2.3", "1 Gi", "Gi", "--1", "1e+-3", "1KI", "1e99",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}
