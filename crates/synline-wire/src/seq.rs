//! TCP sequence numbers: 32-bit, wrapping, compared in serial-number arithmetic (RFC 1982,
//! RFC 9293 section 3.4).
//!
//! `a` is before `b` when the signed 32-bit distance `a - b` is negative, exactly the kernel's
//! `before()`/`after()`. The relation is not a total order (two numbers 2^31 apart are each
//! "before" the other, a case RFC 1982 leaves undefined), so the type does not implement
//! `PartialOrd`: callers say which question they ask.

use core::fmt;
use core::ops::{Add, Sub};

/// A TCP sequence or acknowledgment number.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SeqNumber(pub u32);

impl SeqNumber {
    /// Signed distance `self - other`.
    #[inline]
    pub fn diff(self, other: SeqNumber) -> i32 {
        self.0.wrapping_sub(other.0) as i32
    }

    /// Kernel `before(self, other)`.
    #[inline]
    pub fn before(self, other: SeqNumber) -> bool {
        self.diff(other) < 0
    }

    /// Kernel `after(self, other)`.
    #[inline]
    pub fn after(self, other: SeqNumber) -> bool {
        other.before(self)
    }

    /// Not before: `self >= other` in serial arithmetic.
    #[inline]
    pub fn not_before(self, other: SeqNumber) -> bool {
        !self.before(other)
    }
}

impl Add<u32> for SeqNumber {
    type Output = SeqNumber;
    #[inline]
    fn add(self, rhs: u32) -> SeqNumber {
        SeqNumber(self.0.wrapping_add(rhs))
    }
}

impl Sub<u32> for SeqNumber {
    type Output = SeqNumber;
    #[inline]
    fn sub(self, rhs: u32) -> SeqNumber {
        SeqNumber(self.0.wrapping_sub(rhs))
    }
}

impl fmt::Debug for SeqNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "seq({})", self.0)
    }
}

impl fmt::Display for SeqNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn wraps_around_zero() {
        let a = SeqNumber(u32::MAX - 1);
        let b = a + 4;
        assert_eq!(b, SeqNumber(2));
        assert!(a.before(b));
        assert!(b.after(a));
        assert_eq!(b.diff(a), 4);
        assert_eq!(b - 4, a);
    }

    proptest! {
        #[test]
        fn before_after_are_mirrors(a in any::<u32>(), d in 1u32..(1 << 31)) {
            let x = SeqNumber(a);
            let y = x + d;
            prop_assert!(x.before(y));
            prop_assert!(y.after(x));
            prop_assert!(!y.before(x));
            prop_assert!(x.not_before(x));
        }
    }
}
