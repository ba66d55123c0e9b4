//! EAN codes of grid connections: 18 digits whose last digit is a GS1 check digit.

use std::fmt;

/// A validated 18-digit EAN of a grid connection.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ean(String);

/// Why a string is not a valid EAN (the message is shown to users as is).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EanError {
    #[error("EAN `{0}` must be exactly 18 digits")]
    Shape(String),
    #[error("EAN `{ean}` has check digit {got}, expected {expected}")]
    CheckDigit { ean: String, got: u8, expected: u8 },
}

/// GS1 check digit over the given digits: weights 3,1,3,1,… from the left for an odd count
/// (17 digits), which makes the sum plus the check digit a multiple of 10.
pub fn gs1_check_digit(digits: &[u8]) -> u8 {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| u32::from(*d) * if i % 2 == 0 { 3 } else { 1 })
        .sum();
    ((10 - sum % 10) % 10) as u8
}

impl Ean {
    pub fn parse(s: &str) -> Result<Self, EanError> {
        let bytes = s.as_bytes();
        if bytes.len() != 18 || !bytes.iter().all(u8::is_ascii_digit) {
            return Err(EanError::Shape(s.to_string()));
        }
        let digits: Vec<u8> = bytes.iter().map(|b| b - b'0').collect();
        let expected = gs1_check_digit(&digits[..17]);
        if digits[17] != expected {
            return Err(EanError::CheckDigit {
                ean: s.to_string(),
                got: digits[17],
                expected,
            });
        }
        Ok(Ean(s.to_string()))
    }

    /// Completes 17 digits with their check digit (for generated test and demo data).
    pub fn with_check_digit(first17: &str) -> Result<Self, EanError> {
        let bytes = first17.as_bytes();
        if bytes.len() != 17 || !bytes.iter().all(u8::is_ascii_digit) {
            return Err(EanError::Shape(first17.to_string()));
        }
        let digits: Vec<u8> = bytes.iter().map(|b| b - b'0').collect();
        Ok(Ean(format!("{first17}{}", gs1_check_digit(&digits))))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Ean {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Ean {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ean({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_digit_by_hand() {
        // 87168712000000001?: odd positions (1st, 3rd, …, 17th) ×3, even ×1.
        // digits 8 7 1 6 8 7 1 2 0 0 0 0 0 0 0 0 1
        // ×3:    8,1,8,1,0,0,0,0,1 → 19 × 3 = 57; ×1: 7,6,7,2,0,0,0,0 → 22; sum 79 → check 1.
        assert!(Ean::parse("871687120000000011").is_ok());
        assert_eq!(
            Ean::parse("871687120000000012"),
            Err(EanError::CheckDigit {
                ean: "871687120000000012".into(),
                got: 2,
                expected: 1
            })
        );
    }

    #[test]
    fn shape_is_checked() {
        assert!(matches!(
            Ean::parse("87168712000000001"),
            Err(EanError::Shape(_))
        ));
        assert!(matches!(
            Ean::parse("87168712000000001a"),
            Err(EanError::Shape(_))
        ));
        assert!(matches!(
            Ean::parse(" 871687120000000011"),
            Err(EanError::Shape(_))
        ));
    }

    #[test]
    fn completes_check_digit() {
        assert_eq!(
            Ean::with_check_digit("87168712000000001").unwrap().as_str(),
            "871687120000000011"
        );
    }
}
