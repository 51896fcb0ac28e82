//! The values the workload writes: every byte a deterministic function of (key, version), so a
//! read is checked against what it must be without a second copy of the table. Owns the value
//! format; must never allocate (verification walks the stream beside the bytes) so that checking
//! a read costs no memory in a table already bigger than RAM.
//!
//! The format, for a value of `len` bytes: the key (8 bytes, little-end first), the version (8
//! bytes, likewise), then a SplitMix64 stream seeded from key and version, each word written
//! little-end first; the last word is cut to fit. The header lets a failure say *which* record
//! and version the bytes belonged to (a stale page shows the old version, a misplaced one another
//! key); the stream makes every byte depend on both.

use crate::rng::SplitMix64;
use core::fmt;

/// The bytes of the header (key and version) at the start of a value; the workload's values are
/// at least this long so that every read sees the version it got.
pub const HEADER_LEN: usize = 16;

/// How many bytes of a mismatch a report keeps.
pub const SHOWN_BYTES: usize = 8;

/// The words of the value of (key, version): the header words, then the stream.
struct Words {
    key: u64,
    version: u64,
    index: usize,
    stream: SplitMix64,
}

impl Words {
    fn new(key: u64, version: u64) -> Self {
        // The golden-ratio multiple keeps (k, v) and (v, k)-like pairs on different streams.
        let seed = key ^ version.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        Self {
            key,
            version,
            index: 0,
            stream: SplitMix64::new(seed),
        }
    }

    fn next_bytes(&mut self) -> [u8; 8] {
        let word = match self.index {
            0 => self.key,
            1 => self.version,
            _ => self.stream.next_u64(),
        };
        self.index += 1;
        word.to_le_bytes()
    }
}

/// Fills `buf` with the value of (`key`, `version`); its length is the value's length.
///
/// ```
/// let mut buf = [0u8; 40];
/// kvstore::fill_value(7, 3, &mut buf);
/// assert_eq!(buf[..8], 7u64.to_le_bytes());
/// assert_eq!(buf[8..16], 3u64.to_le_bytes());
/// assert!(kvstore::verify_value(7, 3, &buf).is_ok());
/// ```
pub fn fill_value(key: u64, version: u64, buf: &mut [u8]) {
    let mut words = Words::new(key, version);
    for chunk in buf.chunks_mut(8) {
        let bytes = words.next_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
}

/// Where a value differs from the value of (key, version) it should have been.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mismatch {
    /// The first byte that differs.
    pub offset: usize,
    /// The key in the value's header, if it is long enough to hold one.
    pub found_key: Option<u64>,
    /// The version in the value's header, if it is long enough to hold one.
    pub found_version: Option<u64>,
    /// The bytes that should be there, from `offset`; the first `shown` count.
    pub expected: [u8; SHOWN_BYTES],
    /// The bytes that are there, from `offset`; the first `shown` count.
    pub found: [u8; SHOWN_BYTES],
    /// How many of `expected` and `found` are meaningful (fewer at the end of the value).
    pub shown: usize,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "first difference at byte {}", self.offset)?;
        match (self.found_key, self.found_version) {
            (Some(k), Some(v)) => write!(f, ", header holds key {k:#x} version {v}")?,
            (Some(k), None) => write!(f, ", header holds key {k:#x}")?,
            _ => {}
        }
        write!(
            f,
            ", expected {:02x?} found {:02x?}",
            &self.expected[..self.shown],
            &self.found[..self.shown]
        )
    }
}

/// Checks that `bytes` are the value of (`key`, `version`) of their length (the caller checks
/// the length it expects), reporting the first difference.
///
/// ```
/// let mut buf = [0u8; 32];
/// kvstore::fill_value(1, 2, &mut buf);
/// buf[20] ^= 0xff;
/// let m = kvstore::verify_value(1, 2, &buf).unwrap_err();
/// assert_eq!(m.offset, 20);
/// assert_eq!(m.found_version, Some(2));
/// ```
pub fn verify_value(key: u64, version: u64, bytes: &[u8]) -> Result<(), Mismatch> {
    let mut words = Words::new(key, version);
    for (i, chunk) in bytes.chunks(8).enumerate() {
        let want = words.next_bytes();
        if let Some(j) = chunk.iter().zip(want).position(|(got, want)| *got != want) {
            return Err(mismatch(key, version, bytes, i * 8 + j));
        }
    }
    Ok(())
}

/// The report of a difference at `offset`: only on failure, so it may regenerate the stream.
fn mismatch(key: u64, version: u64, bytes: &[u8], offset: usize) -> Mismatch {
    let header_word = |i: usize| {
        bytes
            .get(i * 8..i * 8 + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
    };
    let shown = SHOWN_BYTES.min(bytes.len() - offset);
    let mut expected = [0u8; SHOWN_BYTES];
    let mut found = [0u8; SHOWN_BYTES];
    found[..shown].copy_from_slice(&bytes[offset..offset + shown]);
    let mut words = Words::new(key, version);
    let mut at = 0;
    while at < offset + shown {
        for b in words.next_bytes() {
            if (offset..offset + shown).contains(&at) {
                expected[at - offset] = b;
            }
            at += 1;
        }
    }
    Mismatch {
        offset,
        found_key: header_word(0),
        found_version: header_word(1),
        expected,
        found,
        shown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_length_round_trips_and_every_byte_is_checked() {
        for len in 0..80 {
            let mut buf = [0u8; 80];
            fill_value(0xdead, 9, &mut buf[..len]);
            assert!(verify_value(0xdead, 9, &buf[..len]).is_ok());
            for i in 0..len {
                let mut bad = buf;
                bad[i] ^= 1;
                let m = verify_value(0xdead, 9, &bad[..len]).unwrap_err();
                assert_eq!(m.offset, i);
                assert_eq!(m.expected[0], buf[i]);
                assert_eq!(m.found[0], bad[i]);
                assert_eq!(m.shown, 8.min(len - i));
                assert_eq!(&m.expected[..m.shown], &buf[i..i + m.shown]);
            }
        }
    }

    #[test]
    fn another_version_or_key_is_caught_and_named() {
        let mut old = [0u8; 64];
        fill_value(5, 1, &mut old);
        let m = verify_value(5, 2, &old).unwrap_err();
        assert_eq!(
            (m.offset, m.found_key, m.found_version),
            (8, Some(5), Some(1))
        );
        let m = verify_value(6, 1, &old).unwrap_err();
        assert_eq!((m.offset, m.found_key), (0, Some(5)));
        // The payload differs too, not only the header.
        let mut new = [0u8; 64];
        fill_value(5, 2, &mut new);
        assert_ne!(old[HEADER_LEN..], new[HEADER_LEN..]);
    }
}
