//! Kubernetes resource quantities ("250m", "1.5", "512Mi", "1G", "1e3") read as exact integers.
//!
//! Kubernetes rounds a quantity up when it is asked for a smaller unit than it can express
//! (`MilliValue`, `Value`); we do the same, so "0.0001" CPU is 1 millicore, never 0.

/// Errors from parsing a quantity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Not a quantity at all; the wording is Kubernetes' own.
    #[error(
        "invalid quantity {value:?}: quantities must match the regular expression \
         '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
    )]
    Invalid {
        /// The text that failed to parse.
        value: String,
    },
    /// A negative amount where only amounts of zero or more make sense.
    #[error("invalid quantity {value:?}: must be greater than or equal to 0")]
    Negative {
        /// The text that failed to parse.
        value: String,
    },
    /// Larger than keg can count (more than 2^64 units).
    #[error("invalid quantity {value:?}: too large")]
    TooLarge {
        /// The text that failed to parse.
        value: String,
    },
}

/// Result of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Parses a CPU quantity into millicores, rounding up ("250m" -> 250, "1.5" -> 1500).
pub fn parse_millis(text: &str) -> Result<u64> {
    Parsed::new(text)?.scaled(3, text)
}

/// Parses a memory (or any byte) quantity into bytes, rounding up ("512Mi" -> 536870912).
pub fn parse_bytes(text: &str) -> Result<u64> {
    Parsed::new(text)?.scaled(0, text)
}

/// Bytes in Kubernetes' canonical binary form, as kubectl prints them ("25Mi", "80Gi",
/// "1536Ki").
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["", "Ki", "Mi", "Gi", "Ti", "Pi"];
    let mut value = bytes;
    let mut unit = 0;
    while unit + 1 < UNITS.len() && value >= 1024 && value.is_multiple_of(1024) {
        value /= 1024;
        unit += 1;
    }
    format!("{value}{}", UNITS[unit])
}

/// Millicores in Kubernetes' canonical form ("250m", "4").
pub fn format_millis(millis: u64) -> String {
    if millis.is_multiple_of(1000) {
        (millis / 1000).to_string()
    } else {
        format!("{millis}m")
    }
}

/// A quantity as `digits / 10^frac_len * 10^exp10 * 2^exp2`, exact.
struct Parsed {
    negative: bool,
    digits: u128,
    frac_len: i64,
    exp10: i64,
    exp2: u32,
}

impl Parsed {
    fn new(text: &str) -> Result<Self> {
        let invalid = || Error::Invalid {
            value: text.to_owned(),
        };
        let (negative, rest) = match text.as_bytes().first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            _ => (false, text),
        };
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, suffix) = rest.split_at(number_len);
        let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
        if frac_part.contains('.') || (int_part.is_empty() && frac_part.is_empty()) {
            return Err(invalid());
        }
        let mut digits: u128 = 0;
        let mut dropped = 0i64;
        for c in int_part.bytes().chain(frac_part.bytes()) {
            // Digits past u128's precision are dropped with their place value kept, which only
            // matters for absurdly long inputs; they make the value too large anyway.
            match digits.checked_mul(10) {
                Some(d) => digits = d + u128::from(c - b'0'),
                None => dropped += 1,
            }
        }
        let frac_len = frac_part.len() as i64 - dropped;
        let (exp10, exp2) = parse_suffix(suffix).ok_or_else(invalid)?;
        Ok(Parsed {
            negative,
            digits,
            frac_len,
            exp10,
            exp2,
        })
    }

    /// The value in units of `10^-unit_exp10`, rounded up.
    fn scaled(&self, unit_exp10: i64, text: &str) -> Result<u64> {
        if self.digits == 0 {
            return Ok(0);
        }
        if self.negative {
            return Err(Error::Negative {
                value: text.to_owned(),
            });
        }
        let too_large = || Error::TooLarge {
            value: text.to_owned(),
        };
        let numerator = 1u128
            .checked_shl(self.exp2)
            .and_then(|p| self.digits.checked_mul(p))
            .ok_or_else(too_large)?;
        let exp = self.exp10 + unit_exp10 - self.frac_len;
        let value = if exp >= 0 {
            let scale = pow10(exp).ok_or_else(too_large)?;
            numerator.checked_mul(scale).ok_or_else(too_large)?
        } else {
            match pow10(-exp) {
                Some(scale) => numerator.div_ceil(scale),
                // A divisor beyond u128 leaves a positive amount smaller than one unit.
                None => 1,
            }
        };
        u64::try_from(value).map_err(|_| too_large())
    }
}

fn pow10(exp: i64) -> Option<u128> {
    10u128.checked_pow(u32::try_from(exp).ok()?)
}

/// The power of ten and of two a suffix stands for; `None` when it is not a suffix.
fn parse_suffix(suffix: &str) -> Option<(i64, u32)> {
    let scale = match suffix {
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
            let exponent = suffix.strip_prefix(['e', 'E'])?;
            let unsigned = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
            if unsigned.is_empty() || !unsigned.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            // Clamped so that arithmetic on it cannot overflow; such exponents are out of range.
            let magnitude: i64 = unsigned
                .parse()
                .unwrap_or(i64::from(i32::MAX))
                .min(1_000_000);
            let exp = if exponent.starts_with('-') {
                -magnitude
            } else {
                magnitude
            };
            (exp, 0)
        }
    };
    Some(scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_print_in_canonical_form() {
        assert_eq!(format_bytes(25 * 1024 * 1024), "25Mi");
        assert_eq!(format_bytes(80 << 30), "80Gi");
        assert_eq!(format_bytes(1536 * 1024), "1536Ki");
        assert_eq!(format_bytes(1000), "1000");
        assert_eq!(format_millis(250), "250m");
        assert_eq!(format_millis(4000), "4");
        assert_eq!(format_millis(0), "0");
    }

    #[test]
    fn cpu_quantities() {
        let cases = [
            ("250m", 250),
            ("1", 1000),
            ("1.5", 1500),
            ("0.1", 100),
            (".5", 500),
            ("2.", 2000),
            ("0.0001", 1),
            ("100u", 1),
            ("1e3", 1_000_000),
            ("1E-3", 1),
            ("+2", 2000),
            ("0", 0),
            ("-0", 0),
            ("1k", 1_000_000),
        ];
        for (text, want) in cases {
            assert_eq!(parse_millis(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn byte_quantities() {
        let cases = [
            ("512Mi", 512 << 20),
            ("1Gi", 1 << 30),
            ("1G", 1_000_000_000),
            ("1.5Gi", 3 << 29),
            ("128974848", 128_974_848),
            ("129e6", 129_000_000),
            ("123Mi", 123 << 20),
            ("0.5Ki", 512),
            ("1m", 1),
            ("1Ei", 1 << 60),
        ];
        for (text, want) in cases {
            assert_eq!(parse_bytes(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn rejects_what_kubernetes_rejects() {
        for text in [
            "", "abc", "1.2.3", "Mi", "1Mii", "1e", "1e+", "1 Mi", ".", "1x", "--1",
        ] {
            assert!(
                matches!(parse_bytes(text), Err(Error::Invalid { .. })),
                "{text:?} should be invalid"
            );
        }
        assert!(matches!(parse_millis("-1"), Err(Error::Negative { .. })));
        assert!(matches!(parse_bytes("100Ei"), Err(Error::TooLarge { .. })));
        assert!(matches!(parse_bytes("1e400"), Err(Error::TooLarge { .. })));
        assert_eq!(parse_bytes("1e-400"), Ok(1));
    }

    #[test]
    fn message_names_the_value() {
        let err = parse_millis("lots").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("invalid quantity \"lots\": quantities must match")
        );
    }
}
