//! Polynomials over GF(2) of degree < 64, as used by restic's Rabin chunker (spec §11.2, §11.5).

use crate::error::{RepoError, Result};
use rand::RngCore;

/// How many random candidates [`Pol::random`] tries before giving up (same as restic).
const RANDOM_TRIES: usize = 1_000_000;

/// A polynomial over GF(2): bit *i* is the coefficient of x^i.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pol(pub u64);

impl Pol {
    /// Picks a random irreducible polynomial of degree 53 the way `restic init` does:
    /// 8 random bytes as little-endian u64, masked to 54 bits, with bits 53 and 0 set,
    /// repeated until irreducible (error after 10^6 tries or if the OS RNG fails).
    pub fn random() -> Result<Pol> {
        let mut rng = rand::rngs::OsRng;
        for _ in 0..RANDOM_TRIES {
            let mut buf = [0u8; 8];
            rng.try_fill_bytes(&mut buf)
                .map_err(|e| RepoError::Invalid(format!("random number generator failed: {e}")))?;
            let mut f = u64::from_le_bytes(buf);
            f &= (1 << 54) - 1;
            f |= (1 << 53) | 1;
            let p = Pol(f);
            if p.is_irreducible() {
                return Ok(p);
            }
        }
        Err(RepoError::Invalid(format!(
            "unable to find an irreducible polynomial after {RANDOM_TRIES} tries"
        )))
    }

    /// Degree of the polynomial (index of the highest set bit); -1 for the zero polynomial.
    pub fn deg(self) -> i32 {
        63 - self.0.leading_zeros() as i32
    }

    /// Ben-Or irreducibility test: a polynomial `f` of degree `d ≥ 1` is irreducible iff
    /// `gcd(f, x^(2^i) − x mod f) == 1` for every `i = 1 … d/2`.
    /// Constants (degree ≤ 0) are not irreducible.
    pub fn is_irreducible(self) -> bool {
        let d = self.deg();
        if d < 1 {
            return false;
        }
        let f = self.0;
        // h = x^(2^i) mod f, starting from x^(2^0) = x.
        let mut h = pmod(0b10, f);
        for _ in 1..=d / 2 {
            h = mul_mod(h, h, f);
            if gcd(f, h ^ 0b10) != 1 {
                return false;
            }
        }
        true
    }

    /// Parses the config-file form: hexadecimal digits without prefix or sign
    /// (either case), at most 64 bits. `None` if malformed.
    pub fn from_hex(s: &str) -> Option<Pol> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u64::from_str_radix(s, 16).ok().map(Pol)
    }

    /// The config-file form: lowercase hex without prefix or leading zeros (Go's
    /// `strconv.FormatUint(p, 16)`).
    pub fn to_hex(self) -> String {
        format!("{:x}", self.0)
    }

    /// `self mod m` (the remainder of polynomial division). The zero modulus leaves
    /// `self` unchanged.
    pub fn modulo(self, m: Pol) -> Pol {
        Pol(pmod(self.0 as u128, m.0))
    }

    /// `self · other mod m`.
    pub fn mul_mod(self, other: Pol, m: Pol) -> Pol {
        Pol(mul_mod(self.0, other.0, m.0))
    }

    /// Greatest common divisor of two polynomials (`gcd(a, 0) = a`).
    pub fn gcd(self, other: Pol) -> Pol {
        Pol(gcd(self.0, other.0))
    }
}

/// Degree of a u128 polynomial; -1 for zero.
fn deg128(x: u128) -> i32 {
    127 - x.leading_zeros() as i32
}

/// `x mod p` over GF(2). A zero modulus returns `x` truncated to 64 bits (never loops).
pub(super) fn pmod(x: u128, p: u64) -> u64 {
    let dp = Pol(p).deg();
    if dp < 0 {
        return x as u64;
    }
    let p = p as u128;
    let mut x = x;
    loop {
        let dx = deg128(x);
        if dx < dp {
            return x as u64;
        }
        x ^= p << (dx - dp);
    }
}

/// Carry-less product of two 64-bit polynomials.
fn clmul(a: u64, b: u64) -> u128 {
    let mut r = 0u128;
    let a = a as u128;
    let mut b = b;
    let mut i = 0;
    while b != 0 {
        if b & 1 != 0 {
            r ^= a << i;
        }
        b >>= 1;
        i += 1;
    }
    r
}

/// `a · b mod p` over GF(2).
fn mul_mod(a: u64, b: u64, p: u64) -> u64 {
    pmod(clmul(a, b), p)
}

/// Polynomial gcd over GF(2).
fn gcd(a: u64, b: u64) -> u64 {
    let (mut a, mut b) = (a, b);
    while b != 0 {
        let r = pmod(a as u128, b);
        a = b;
        b = r;
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn degrees() {
        assert_eq!(Pol(0).deg(), -1);
        assert_eq!(Pol(1).deg(), 0);
        assert_eq!(Pol(0b10).deg(), 1);
        assert_eq!(Pol(0x2948440c78e103).deg(), 53);
        assert_eq!(Pol(u64::MAX).deg(), 63);
    }

    #[test]
    fn arithmetic() {
        // (x+1)^2 = x^2+1 over GF(2)
        assert_eq!(clmul(0b11, 0b11), 0b101);
        // x^2+1 mod (x+1) = 0
        assert_eq!(Pol(0b101).modulo(Pol(0b11)), Pol(0));
        // x^3 mod (x^2+x+1) = 1
        assert_eq!(Pol(0b1000).modulo(Pol(0b111)), Pol(1));
        // gcd((x+1)(x^2+x+1), (x+1)^2) = x+1
        let a = clmul(0b11, 0b111) as u64;
        assert_eq!(Pol(a).gcd(Pol(0b101)), Pol(0b11));
        assert_eq!(Pol(0b111).gcd(Pol(0)), Pol(0b111));
        // x · x mod (x^2+x+1) = x+1
        assert_eq!(Pol(0b10).mul_mod(Pol(0b10), Pol(0b111)), Pol(0b11));
        // Zero modulus does not loop.
        assert_eq!(Pol(12345).modulo(Pol(0)), Pol(12345));
    }

    #[test]
    fn irreducibility_small() {
        // Irreducible polynomials of degree ≤ 4: x, x+1, x^2+x+1, x^3+x+1, x^3+x^2+1,
        // x^4+x+1, x^4+x^3+1, x^4+x^3+x^2+x+1.
        let irreducible = [
            0b10u64, 0b11, 0b111, 0b1011, 0b1101, 0b10011, 0b11001, 0b11111,
        ];
        for p in 0u64..32 {
            assert_eq!(
                Pol(p).is_irreducible(),
                irreducible.contains(&p),
                "polynomial {p:#b}"
            );
        }
    }

    #[test]
    fn irreducibility_fixtures() {
        assert!(Pol(0x2948440c78e103).is_irreducible());
        assert!(Pol(0x2e860100029429).is_irreducible());
        assert!(Pol(0x3da3358b4dc173).is_irreducible());
        // x^53 + 1 is divisible by x + 1; x^53 + x + 1 and a product are reducible.
        assert!(!Pol(0x20000000000001).is_irreducible());
        assert!(!Pol(0x20000000000003).is_irreducible());
        let product = clmul(0x2948440c78e103 & ((1 << 30) - 1), 0b111) as u64;
        assert!(!Pol(product).is_irreducible());
        // Even polynomials (divisible by x) of degree > 1 are reducible.
        assert!(!Pol(0x2948440c78e102).is_irreducible());
    }

    #[test]
    fn random_polynomial() {
        for _ in 0..3 {
            let p = Pol::random().unwrap();
            assert_eq!(p.deg(), 53);
            assert!(p.is_irreducible());
            assert_eq!(p.0 & 1, 1);
        }
    }

    #[test]
    fn hex_round_trip() {
        assert_eq!(Pol::from_hex("2948440c78e103"), Some(Pol(0x2948440c78e103)));
        assert_eq!(Pol::from_hex("2E860100029429"), Some(Pol(0x2e860100029429)));
        assert_eq!(Pol(0x2948440c78e103).to_hex(), "2948440c78e103");
        assert_eq!(Pol(0).to_hex(), "0");
        for bad in ["", "0x2948", "+1f", "-1", "12 ", "g1", "11112222333344445"] {
            assert_eq!(Pol::from_hex(bad), None, "{bad:?}");
        }
        assert_eq!(Pol::from_hex("ffffffffffffffff"), Some(Pol(u64::MAX)));
    }
}
