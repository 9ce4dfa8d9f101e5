//! Avro's `decimal` logical type: whether an unscaled value (big-endian two's complement, as a
//! datum carries it) fits its precision, and the unscaled bytes of a decimal numeral (as JSON
//! carries it). Both cost time linear in the bytes a client sent: the digits of a value are
//! only counted exactly when its bit length leaves the answer open, which bounds the count's
//! size by the schema's precision, not by the datum.

use num_bigint::{BigInt, BigUint, Sign};

/// log10(2): a number of `b` bits has between `floor((b - 1) * LOG10_2) + 1` and
/// `floor(b * LOG10_2) + 1` decimal digits.
const LOG10_2: f64 = std::f64::consts::LOG10_2;

/// How many digits an unscaled value has, when it has more than its precision allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TooManyDigits {
    /// Counted exactly.
    Exactly(usize),
    /// Known from its bit length alone: it has at least this many.
    AtLeast(usize),
}

impl std::fmt::Display for TooManyDigits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Exactly(digits) => write!(f, "{digits} digits"),
            Self::AtLeast(digits) => write!(f, "at least {digits} digits"),
        }
    }
}

/// Whether the unscaled value `bytes` (big-endian two's complement) has at most `precision`
/// decimal digits; if not, how many it has.
pub(super) fn check_precision(bytes: &[u8], precision: usize) -> Result<(), TooManyDigits> {
    let magnitude = BigInt::from_signed_bytes_be(bytes).into_parts().1;
    let bits = magnitude.bits();
    if bits == 0 {
        return if precision >= 1 {
            Ok(())
        } else {
            Err(TooManyDigits::Exactly(1))
        };
    }
    let fewest = ((bits - 1) as f64 * LOG10_2).floor() as usize + 1;
    let most = (bits as f64 * LOG10_2).floor() as usize + 1;
    if most <= precision {
        return Ok(());
    }
    if fewest > precision {
        return Err(TooManyDigits::AtLeast(fewest));
    }
    // Here the value has about `precision` digits, so counting them costs what the schema
    // allows, whatever the datum's size.
    match digits(&magnitude) {
        counted if counted <= precision => Ok(()),
        counted => Err(TooManyDigits::Exactly(counted)),
    }
}

/// The decimal digits of `magnitude` (1 for zero).
fn digits(magnitude: &BigUint) -> usize {
    magnitude.to_str_radix(10).len()
}

/// `text` (a decimal numeral with at most `scale` fraction digits, checked by the caller) as the
/// big-endian two's-complement bytes of its unscaled value at `scale`, in as few bytes as hold it.
pub(super) fn unscaled_bytes(text: &str, scale: usize) -> Vec<u8> {
    let (sign, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (Sign::Minus, rest),
        None => (Sign::Plus, text),
    };
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let digits = format!("{whole}{fraction:0<scale$}");
    let magnitude = BigUint::parse_bytes(digits.as_bytes(), 10).unwrap_or_default();
    BigInt::from_biguint(sign, magnitude).to_signed_bytes_be()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The digits of a value by the definition: its magnitude written in decimal.
    fn counted(bytes: &[u8]) -> usize {
        digits(BigInt::from_signed_bytes_be(bytes).magnitude())
    }

    #[test]
    fn precision_counts_the_magnitude() {
        assert_eq!(check_precision(&[0x00], 1), Ok(())); // 0
        assert_eq!(check_precision(&[0x7F], 3), Ok(())); // 127
        assert_eq!(check_precision(&[0x7F], 2), Err(TooManyDigits::Exactly(3)));
        assert_eq!(check_precision(&[0xFF], 1), Ok(())); // -1
        assert_eq!(check_precision(&[0x80], 2), Err(TooManyDigits::AtLeast(3))); // -128: 8 bits
        assert_eq!(
            check_precision(&[0x27, 0x10], 4),
            Err(TooManyDigits::Exactly(5))
        ); // 10000
        assert_eq!(check_precision(&[0x27, 0x0F], 4), Ok(())); // 9999
    }

    #[test]
    fn the_answer_agrees_with_counting_at_every_bit_length() {
        // Values around each power of two and of ten, positive and negative.
        let mut values: Vec<BigInt> = Vec::new();
        for bits in 0..200u32 {
            let power = BigInt::from(1) << bits;
            values.extend([power.clone() - 1, power.clone(), power + 1]);
        }
        for exponent in 0..60u32 {
            let power = BigInt::from(10).pow(exponent);
            values.extend([power.clone() - 1, power.clone(), power + 1]);
        }
        for value in values.clone() {
            values.push(-value);
        }
        for value in values {
            let bytes = value.to_signed_bytes_be();
            let digits = counted(&bytes);
            for precision in digits.saturating_sub(3)..digits + 3 {
                match check_precision(&bytes, precision) {
                    Ok(()) => assert!(digits <= precision, "{value} at {precision}"),
                    Err(TooManyDigits::Exactly(n)) => assert_eq!(n, digits, "{value}"),
                    Err(TooManyDigits::AtLeast(n)) => {
                        assert!(n > precision && n <= digits, "{value}: {n} at {precision}")
                    }
                }
            }
        }
    }

    #[test]
    fn a_huge_value_is_refused_from_its_length() {
        let huge = vec![0x7F; 1 << 20];
        match check_precision(&huge, 38) {
            Err(TooManyDigits::AtLeast(n)) => assert!(n > 2_000_000, "{n}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn numerals_become_minimal_twos_complement_bytes() {
        assert_eq!(unscaled_bytes("1234.50", 2), vec![0x01, 0xE2, 0x3A]); // 123450
        assert_eq!(unscaled_bytes("1.5", 2), vec![0x00, 0x96]); // 150
        assert_eq!(unscaled_bytes("-1", 0), vec![0xFF]);
        assert_eq!(unscaled_bytes("0", 2), vec![0x00]);
        assert_eq!(unscaled_bytes("-0.00", 2), vec![0x00]);
        // Past 128 bits, where a fixed-width integer would have stopped.
        let forty_nines = "9".repeat(40);
        let bytes = unscaled_bytes(&forty_nines, 0);
        assert_eq!(
            BigInt::from_signed_bytes_be(&bytes).to_string(),
            forty_nines
        );
        let negative = unscaled_bytes(&format!("-{forty_nines}.5"), 1);
        assert_eq!(
            BigInt::from_signed_bytes_be(&negative).to_string(),
            format!("-{forty_nines}5")
        );
    }
}
