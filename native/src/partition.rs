//! The partition a record's key goes to, as Kafka's default partitioner puts it: murmur2 of
//! the key (the Java client's `Utils.murmur2`, which aiokafka's `DefaultPartitioner` copies
//! in pure Python at ~3 µs a key), its sign bit cleared, modulo the partition count. Held
//! equal to aiokafka's by tests/unit/test_native_partition.py.

use pyo3::prelude::*;

const SEED: u32 = 0x9747_B28C;
const M: u32 = 0x5BD1_E995;
const R: u32 = 24;

/// The Java client's murmur2 of `data`.
pub fn murmur2(data: &[u8]) -> u32 {
    let mut h = SEED ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

/// The index among `count` partitions that the default partitioner gives `key`.
#[pyfunction]
pub fn partition_of(key: &[u8], count: usize) -> PyResult<usize> {
    if count == 0 {
        return Err(pyo3::exceptions::PyValueError::new_err(
            "a topic has at least one partition",
        ));
    }
    Ok((murmur2(key) & 0x7FFF_FFFF) as usize % count)
}
