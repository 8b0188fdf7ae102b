//! Human durations such as `30d` or `12h`, as the CLI and API accept them for
//! token expiry and time filters.

use crate::FieldError;

/// The longest expiry a token may be given: ten years.
pub const MAX_DURATION_SECS: u64 = 3650 * 86_400;

/// Parses `<number><unit>` with unit `s`, `m`, `h`, `d` or `w` into seconds.
/// Zero, negative, fractional, unit-less and absurdly long durations are refused.
pub fn parse_duration_secs(field: &str, input: &str) -> Result<u64, FieldError> {
    let bad = |why: &str| {
        FieldError::new(
            field,
            format!("'{input}' is not a duration: {why} (examples: 90m, 12h, 30d, 2w)"),
        )
    };
    let s = input.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| bad("it needs a unit: s, m, h, d or w"))?;
    let (number, unit) = s.split_at(split);
    if number.is_empty() {
        return Err(bad("it must start with a whole number"));
    }
    let n: u64 = number.parse().map_err(|_| bad("the number is too large"))?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(bad("the unit must be one of s, m, h, d or w")),
    };
    let secs = n.checked_mul(scale).ok_or_else(|| bad("it is too long"))?;
    if secs == 0 {
        return Err(bad("it must be longer than zero"));
    }
    if secs > MAX_DURATION_SECS {
        return Err(bad("it must be at most 3650d"));
    }
    Ok(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse_duration_secs("d", "45s").unwrap(), 45);
        assert_eq!(parse_duration_secs("d", "90m").unwrap(), 5400);
        assert_eq!(parse_duration_secs("d", "12h").unwrap(), 43_200);
        assert_eq!(parse_duration_secs("d", "30d").unwrap(), 2_592_000);
        assert_eq!(parse_duration_secs("d", "2w").unwrap(), 1_209_600);
        assert_eq!(
            parse_duration_secs("d", "3650d").unwrap(),
            MAX_DURATION_SECS
        );
    }

    #[test]
    fn refusals_name_the_field_and_the_input() {
        for bad in [
            "",
            "30",
            "d",
            "0d",
            "-1d",
            "1.5d",
            "30y",
            "3651d",
            "99999999999999999999d",
        ] {
            let e = parse_duration_secs("expires_in", bad).unwrap_err();
            assert_eq!(e.field, "expires_in");
            assert!(
                e.reason.contains(&format!("'{bad}'")),
                "{bad}: {}",
                e.reason
            );
        }
    }
}
