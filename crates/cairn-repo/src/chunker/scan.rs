//! The rolling-hash kernel: finds the first position whose window fingerprint has the
//! low 20 bits zero.
//!
//! The kernel reads the outgoing byte straight from the input (64 bytes back) instead of
//! a ring buffer, and hashes large inputs in four independent lanes at once. This is
//! exact because once 64 bytes have been hashed the digest is a pure function of the last
//! 64 bytes (spec §11.4: `digest == F(e)`), so a lane can start anywhere from a zero
//! state after 64 bytes of warm-up.

use super::ChunkerTables;

/// Window size in bytes.
pub(super) const WINDOW: usize = 64;
/// A cut is allowed where `digest & SPLIT_MASK == 0`.
pub(super) const SPLIT_MASK: u64 = (1 << 20) - 1;

/// Bytes per lane in one multi-lane block.
const LANE: usize = 16 * 1024;
/// Number of lanes hashed in lock-step.
const LANES: usize = 4;
/// New bytes covered by one block.
const BLOCK: usize = LANE * LANES;

/// The table shift of every degree-53 polynomial (all that restic creates); the kernel is
/// compiled with it as a constant (a variable shift costs extra micro-ops per byte).
const SHIFT_53: u32 = 53 - 8;

/// One rolling step: drop `old` (the byte 64 positions back), append `new`.
#[inline(always)]
pub(super) fn roll(t: &ChunkerTables, digest: u64, old: u8, new: u8) -> u64 {
    roll_k::<false>(t, digest, old, new)
}

/// [`roll`] with the shift fixed to [`SHIFT_53`] if `DEG53` (only valid then).
#[inline(always)]
fn roll_k<const DEG53: bool>(t: &ChunkerTables, digest: u64, old: u8, new: u8) -> u64 {
    let shift = if DEG53 { SHIFT_53 } else { t.shift };
    let d = digest ^ t.out_table[old as usize];
    let idx = (d >> shift) as u8;
    ((d << 8) | new as u64) ^ t.mod_table[idx as usize]
}

/// Scans `r[WINDOW..]`, where `r[..WINDOW]` are the 64 bytes hashed just before and
/// `digest` is their fingerprint. Returns the number of bytes of `r[WINDOW..]` up to and
/// including the first byte after which `digest & SPLIT_MASK == 0`, or `None` and the
/// digest after all bytes.
pub(super) fn scan(t: &ChunkerTables, r: &[u8], digest: u64) -> (Option<usize>, u64) {
    if t.shift == SHIFT_53 {
        scan_k::<true>(t, r, digest)
    } else {
        scan_k::<false>(t, r, digest)
    }
}

/// [`scan`], specialised on whether the shift is [`SHIFT_53`].
fn scan_k<const DEG53: bool>(t: &ChunkerTables, r: &[u8], digest: u64) -> (Option<usize>, u64) {
    let n = r.len().saturating_sub(WINDOW);
    let mut digest = digest;
    let mut done = 0;
    while n - done >= BLOCK {
        let Some(blk) = r.get(done..done + BLOCK + WINDOW) else {
            break;
        };
        match scan_block::<DEG53>(t, blk, digest) {
            Ok(d) => digest = d,
            Err(cut) => return (Some(done + cut), 0),
        }
        done += BLOCK;
    }
    let rest = r.get(done..).unwrap_or_default();
    let (cut, d) = scan1::<DEG53>(t, rest, digest);
    (cut.map(|c| done + c), d)
}

/// Single-lane scan with the same contract as [`scan`].
#[inline]
fn scan1<const DEG53: bool>(t: &ChunkerTables, r: &[u8], digest: u64) -> (Option<usize>, u64) {
    let new = r.get(WINDOW..).unwrap_or_default();
    let mut digest = digest;
    for (i, (&o, &b)) in r.iter().zip(new).enumerate() {
        digest = roll_k::<DEG53>(t, digest, o, b);
        if digest & SPLIT_MASK == 0 {
            return (Some(i + 1), digest);
        }
    }
    (None, digest)
}

/// The first 64 bytes of a lane region (the context before its first new byte).
fn head(r: &[u8]) -> &[u8] {
    r.get(..WINDOW).unwrap_or_default()
}

/// The new bytes of a lane region (everything after the first 64).
fn tail(r: &[u8]) -> &[u8] {
    r.get(WINDOW..).unwrap_or_default()
}

/// Fingerprint of `w` hashed from a zero state (as if preceded by zero bytes).
#[inline]
fn warm_up<const DEG53: bool>(t: &ChunkerTables, w: &[u8]) -> u64 {
    // out_table[0] == 0, so rolling out zero bytes is the plain Horner step.
    w.iter().fold(0, |d, &b| roll_k::<DEG53>(t, d, 0, b))
}

/// Scans one block (`blk.len() == BLOCK + WINDOW`) in four lanes. `Ok(digest at end)` or
/// `Err(cut)` with the same meaning as [`scan`]'s cut.
fn scan_block<const DEG53: bool>(t: &ChunkerTables, blk: &[u8], digest: u64) -> Result<u64, usize> {
    let lane = |i: usize| {
        blk.get(i * LANE..(i + 1) * LANE + WINDOW)
            .unwrap_or_default()
    };
    let (r0, r1, r2, r3) = (lane(0), lane(1), lane(2), lane(3));
    let mut d = [
        digest,
        warm_up::<DEG53>(t, head(r1)),
        warm_up::<DEG53>(t, head(r2)),
        warm_up::<DEG53>(t, head(r3)),
    ];
    let [mut d0, mut d1, mut d2, mut d3] = d;
    let lanes = r0
        .iter()
        .zip(tail(r0))
        .zip(r1.iter().zip(tail(r1)))
        .zip(r2.iter().zip(tail(r2)).zip(r3.iter().zip(tail(r3))));
    let mut hit_at = None;
    for (j, (((&o0, &n0), (&o1, &n1)), ((&o2, &n2), (&o3, &n3)))) in lanes.enumerate() {
        d0 = roll_k::<DEG53>(t, d0, o0, n0);
        d1 = roll_k::<DEG53>(t, d1, o1, n1);
        d2 = roll_k::<DEG53>(t, d2, o2, n2);
        d3 = roll_k::<DEG53>(t, d3, o3, n3);
        if ((d0 & SPLIT_MASK) == 0)
            | ((d1 & SPLIT_MASK) == 0)
            | ((d2 & SPLIT_MASK) == 0)
            | ((d3 & SPLIT_MASK) == 0)
        {
            hit_at = Some(j);
            break;
        }
    }
    let Some(j) = hit_at else {
        return Ok(d3);
    };
    // Some lane cut after its byte j. The first cut overall is in the lowest lane that
    // has one; finish the lower lanes one at a time.
    d = [d0, d1, d2, d3];
    for (i, (&di, r)) in d.iter().zip([r0, r1, r2, r3]).enumerate() {
        if di & SPLIT_MASK == 0 {
            return Err(i * LANE + j + 1);
        }
        let rest = r.get(j + 1..).unwrap_or_default();
        if let (Some(c), _) = scan1::<DEG53>(t, rest, di) {
            return Err(i * LANE + j + 1 + c);
        }
    }
    // Unreachable: the lane that triggered the break cuts at j. Report a cut there anyway
    // rather than continuing with a wrong digest.
    Err(3 * LANE + j + 1)
}
