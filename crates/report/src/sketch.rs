//! The encodings rollups keep distinct visitors and sessions in: an exact set of 64-bit ids,
//! and a HyperLogLog sketch for `"accuracy": "fast"`.
//!
//! Exact sets are the sorted distinct ids, 8 bytes each (visitor ids are already uniform
//! hashes, so no delta or dictionary coding would shrink them). Unions over many rollup hours
//! stay exact; the sketch trades exactness for a fixed size and cheap merges.

use std::collections::HashSet;

/// Registers of the sketch: 2^12, a relative standard error of 1.04 / 64 = 1.6%.
const PRECISION: u32 = 12;
const REGISTERS: usize = 1 << PRECISION;

/// Relative standard error of [`Hll::estimate`].
pub const HLL_STANDARD_ERROR: f64 = 1.04 / 64.0;

const SPARSE: u8 = 1;
const DENSE: u8 = 2;

/// Encodes a set of ids: sorted, distinct, little-endian.
pub fn encode_set(ids: impl IntoIterator<Item = u64>) -> Vec<u8> {
    let mut sorted: Vec<u64> = ids.into_iter().collect();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out = Vec::with_capacity(sorted.len() * 8);
    for id in sorted {
        out.extend_from_slice(&id.to_le_bytes());
    }
    out
}

/// Adds the ids of an encoded set to `into`; a trailing partial id (a damaged value) is
/// ignored.
pub fn extend_from_set(into: &mut HashSet<u64>, bytes: &[u8]) {
    into.reserve(bytes.len() / 8);
    for chunk in bytes.chunks_exact(8) {
        let mut id = [0u8; 8];
        id.copy_from_slice(chunk);
        into.insert(u64::from_le_bytes(id));
    }
}

/// The number of ids in an encoded set.
pub fn set_len(bytes: &[u8]) -> usize {
    bytes.len() / 8
}

/// The union of encoded sets, encoded.
pub fn union_sets<'a>(sets: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut all = HashSet::new();
    for s in sets {
        extend_from_set(&mut all, s);
    }
    encode_set(all)
}

/// Spreads an id's bits, so that ids that are not uniform hashes still fill the registers
/// evenly (splitmix64's finalizer).
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Sparse registers beyond this many take more room than the dense array.
const SPARSE_LIMIT: usize = REGISTERS / 4;

/// A HyperLogLog sketch of 4096 registers. Small sketches (most rollup rows count a handful of
/// visitors) keep only their non-zero registers, sorted, as `index << 8 | rank`; past a
/// quarter of the registers they switch to the dense array.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Hll {
    sparse: Vec<u32>,
    dense: Option<Box<[u8]>>,
}

fn index_and_rank(id: u64) -> (usize, u8) {
    let h = mix(id);
    let index = (h >> (64 - PRECISION)) as usize;
    // The rank of the remaining bits: position of the first 1, counted from 1.
    let rest = h << PRECISION;
    (index, (rest.leading_zeros().min(64 - PRECISION) + 1) as u8)
}

impl Hll {
    fn densify(&mut self) -> &mut [u8] {
        if self.dense.is_none() {
            let mut registers = vec![0u8; REGISTERS].into_boxed_slice();
            for e in self.sparse.drain(..) {
                registers[(e >> 8) as usize] = (e & 0xff) as u8;
            }
            self.dense = Some(registers);
        }
        self.dense.as_deref_mut().unwrap_or_default()
    }

    fn set(&mut self, index: usize, rank: u8) {
        if let Some(dense) = self.dense.as_deref_mut() {
            dense[index] = dense[index].max(rank);
            return;
        }
        let key = (index as u32) << 8;
        match self.sparse.binary_search_by_key(&key, |e| e & !0xff) {
            Ok(at) => {
                if (self.sparse[at] & 0xff) < u32::from(rank) {
                    self.sparse[at] = key | u32::from(rank);
                }
            }
            Err(at) => {
                self.sparse.insert(at, key | u32::from(rank));
                if self.sparse.len() > SPARSE_LIMIT {
                    self.densify();
                }
            }
        }
    }

    /// Counts `id`.
    pub fn insert(&mut self, id: u64) {
        let (index, rank) = index_and_rank(id);
        self.set(index, rank);
    }

    /// Counts everything `other` counted.
    pub fn merge(&mut self, other: &Hll) {
        match (&other.dense, self.dense.is_some()) {
            (Some(theirs), _) => {
                let mine = self.densify();
                for (m, t) in mine.iter_mut().zip(theirs.iter()) {
                    *m = (*m).max(*t);
                }
            }
            (None, true) => {
                for e in &other.sparse {
                    self.set((e >> 8) as usize, (e & 0xff) as u8);
                }
            }
            (None, false) => self.merge_sparse(&other.sparse),
        }
    }

    /// Merges sorted sparse entries into this sparse sketch in one pass.
    fn merge_sparse(&mut self, theirs: &[u32]) {
        let mine = std::mem::take(&mut self.sparse);
        let mut out = Vec::with_capacity(mine.len() + theirs.len());
        let (mut i, mut j) = (0, 0);
        while i < mine.len() || j < theirs.len() {
            let next = match (mine.get(i), theirs.get(j)) {
                (Some(a), Some(b)) if a >> 8 == b >> 8 => {
                    i += 1;
                    j += 1;
                    (*a).max(*b)
                }
                (Some(a), Some(b)) if a >> 8 < b >> 8 => {
                    i += 1;
                    *a
                }
                (Some(a), None) => {
                    i += 1;
                    *a
                }
                (_, Some(b)) => {
                    j += 1;
                    *b
                }
                (None, None) => break,
            };
            out.push(next);
        }
        self.sparse = out;
        if self.sparse.len() > SPARSE_LIMIT {
            self.densify();
        }
    }

    /// The estimated number of distinct ids counted (with the small-range correction).
    pub fn estimate(&self) -> f64 {
        let m = REGISTERS as f64;
        let alpha = 0.7213 / (1.0 + 1.079 / m);
        let (sum, zeros) = match &self.dense {
            Some(registers) => (
                registers.iter().map(|r| 2f64.powi(-i32::from(*r))).sum::<f64>(),
                registers.iter().filter(|r| **r == 0).count(),
            ),
            None => {
                let used: f64 = self.sparse.iter().map(|e| 2f64.powi(-((e & 0xff) as i32))).sum();
                let zeros = REGISTERS - self.sparse.len();
                (used + zeros as f64, zeros)
            }
        };
        let raw = alpha * m * m / sum;
        if raw <= 2.5 * m && zeros > 0 { m * (m / zeros as f64).ln() } else { raw }
    }

    /// The sketch's bytes: the non-zero registers as (index, rank) while that is smaller,
    /// else every register.
    pub fn encode(&self) -> Vec<u8> {
        match &self.dense {
            Some(registers) => {
                let mut out = Vec::with_capacity(1 + REGISTERS);
                out.push(DENSE);
                out.extend_from_slice(registers);
                out
            }
            None => {
                let mut out = Vec::with_capacity(1 + self.sparse.len() * 3);
                out.push(SPARSE);
                for e in &self.sparse {
                    out.extend_from_slice(&((e >> 8) as u16).to_le_bytes());
                    out.push((e & 0xff) as u8);
                }
                out
            }
        }
    }

    /// Reads bytes written by [`Hll::encode`]; `None` when they are not a sketch.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let (&format, body) = bytes.split_first()?;
        match format {
            SPARSE if body.len() % 3 == 0 => {
                let mut sparse = Vec::with_capacity(body.len() / 3);
                for entry in body.chunks_exact(3) {
                    let index = u32::from(u16::from_le_bytes([entry[0], entry[1]]));
                    if index as usize >= REGISTERS || sparse.last().is_some_and(|last: &u32| last >> 8 >= index) {
                        return None;
                    }
                    sparse.push(index << 8 | u32::from(entry[2]));
                }
                let mut sketch = Self { sparse, dense: None };
                if sketch.sparse.len() > SPARSE_LIMIT {
                    sketch.densify();
                }
                Some(sketch)
            }
            DENSE if body.len() == REGISTERS => Some(Self { sparse: Vec::new(), dense: Some(body.into()) }),
            _ => None,
        }
    }

    /// Merges encoded sketch bytes into this one; false when they are not a sketch.
    pub fn merge_bytes(&mut self, bytes: &[u8]) -> bool {
        match Self::decode(bytes) {
            Some(other) => {
                self.merge(&other);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_round_trip_and_unite() {
        let a = encode_set([5, 1, 3, 1]);
        assert_eq!(set_len(&a), 3);
        let b = encode_set([3, 9]);
        let u = union_sets([a.as_slice(), b.as_slice()]);
        let mut got = HashSet::new();
        extend_from_set(&mut got, &u);
        assert_eq!(got, HashSet::from([1, 3, 5, 9]));
        assert!(encode_set([]).is_empty());
    }

    #[test]
    fn estimates_stay_within_a_few_standard_errors() {
        for n in [0u64, 1, 10, 1000, 50_000, 300_000] {
            let mut h = Hll::default();
            for i in 0..n {
                h.insert(i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            }
            let estimate = h.estimate();
            let bound = (n as f64 * 4.0 * HLL_STANDARD_ERROR).max(1.0);
            assert!((estimate - n as f64).abs() <= bound, "{n}: {estimate}");
        }
    }

    #[test]
    fn merged_sketches_count_the_union() {
        let (mut a, mut b) = (Hll::default(), Hll::default());
        for i in 0..20_000u64 {
            a.insert(i);
        }
        for i in 10_000..30_000u64 {
            b.insert(i);
        }
        let mut via_bytes = Hll::decode(&a.encode()).expect("a sketch");
        assert!(via_bytes.merge_bytes(&b.encode()));
        a.merge(&b);
        assert_eq!(a.encode(), via_bytes.encode());
        assert!((a.estimate() - 30_000.0).abs() < 30_000.0 * 4.0 * HLL_STANDARD_ERROR);
    }

    #[test]
    fn sparse_and_dense_sketches_agree() {
        let (mut small, mut big) = (Hll::default(), Hll::default());
        for i in 0..200u64 {
            small.insert(i);
        }
        for i in 100..5_000u64 {
            big.insert(i);
        }
        assert!(small.dense.is_none() && big.dense.is_some());
        let mut a = small.clone();
        a.merge(&big);
        let mut b = big.clone();
        b.merge(&small);
        assert_eq!(a.encode(), b.encode(), "merging is symmetric across representations");
        let mut c = Hll::default();
        for i in 0..5_000u64 {
            c.insert(i);
        }
        assert_eq!(a.encode(), c.encode(), "a merge equals counting the union");
    }

    #[test]
    fn small_sketches_are_sparse_and_bad_bytes_are_refused() {
        let mut h = Hll::default();
        h.insert(42);
        assert_eq!(h.encode().len(), 4);
        assert_eq!(Hll::decode(&h.encode()), Some(h));
        assert_eq!(Hll::decode(&[9, 1, 2]), None);
        assert_eq!(Hll::decode(&[SPARSE, 0xff, 0xff, 1]), None, "index out of range");
        assert_eq!(Hll::decode(&[SPARSE, 2, 0, 1, 1, 0, 1]), None, "entries out of order");
        assert_eq!(Hll::decode(&[]), None);
    }
}
