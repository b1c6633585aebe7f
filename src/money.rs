//! Money on the wire and in storage: documents send yuan as numbers with two decimals
//! (`1250.50`); storage and arithmetic use integer fen. These are the only conversions.

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

/// Fen as yuan with two decimals (`125050` → `1250.50`).
pub fn yuan(fen: i64) -> Decimal {
    Decimal::new(fen, 2)
}

/// Yuan as fen, when it is a whole number of fen (`1250.5` → `125050`; `0.001` → `None`).
pub fn fen(yuan: Decimal) -> Option<i64> {
    let scaled = yuan.checked_mul(Decimal::ONE_HUNDRED)?;
    if scaled.fract().is_zero() { scaled.to_i64() } else { None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions() {
        assert_eq!(yuan(125050).to_string(), "1250.50");
        assert_eq!(yuan(0).to_string(), "0.00");
        assert_eq!(fen("1250.50".parse().unwrap()), Some(125050));
        assert_eq!(fen("1250.5".parse().unwrap()), Some(125050));
        assert_eq!(fen("1250".parse().unwrap()), Some(125000));
        assert_eq!(fen("0.001".parse().unwrap()), None);
        assert_eq!(fen("-3.10".parse().unwrap()), Some(-310));
    }
}
