//! Maglev consistent hashing (Eisenbud et al., NSDI 2016): the lookup table for an external frontend,
//! mapping each of `MAGLEV_TABLE_SIZE` buckets to a backend slot. Every backend gets an almost equal share
//! of buckets, and when one backend is added or removed only about its share of buckets moves, so flows
//! to the other backends keep their backend on every node. The permutation of a backend depends only on
//! its address and port (stable FNV-1a hashes), so every node computes the same table from the same
//! backends.

use strait_abi::service::MAGLEV_TABLE_SIZE;

use crate::services::Backend;

/// FNV-1a (64 bit) of `bytes`, starting from `basis`.
fn fnv1a(bytes: &[u8], basis: u64) -> u64 {
    bytes.iter().fold(basis, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The Maglev table for `backends` (indices into the slice); empty when there are no backends.
pub fn table(backends: &[Backend]) -> Vec<u32> {
    table_of_size(backends, MAGLEV_TABLE_SIZE)
}

fn table_of_size(backends: &[Backend], size: usize) -> Vec<u32> {
    if backends.is_empty() {
        return Vec::new();
    }
    let size_u64 = size as u64;
    let permutations: Vec<(u64, u64)> = backends
        .iter()
        .map(|backend| {
            let mut name = backend.addr.octets().to_vec();
            name.extend_from_slice(&backend.port.to_be_bytes());
            let offset = fnv1a(&name, 0xcbf2_9ce4_8422_2325) % size_u64;
            let skip = fnv1a(&name, 0x8422_2325_cbf2_9ce4) % (size_u64 - 1) + 1;
            (offset, skip)
        })
        .collect();
    let mut next = vec![0u64; backends.len()];
    let mut entries = vec![u32::MAX; size];
    let mut filled = 0;
    loop {
        for (index, (offset, skip)) in permutations.iter().enumerate() {
            let mut bucket = ((offset + next[index] * skip) % size_u64) as usize;
            while entries[bucket] != u32::MAX {
                next[index] += 1;
                bucket = ((offset + next[index] * skip) % size_u64) as usize;
            }
            entries[bucket] = index as u32;
            next[index] += 1;
            filled += 1;
            if filled == size {
                return entries;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn backends(count: u8) -> Vec<Backend> {
        (1..=count)
            .map(|i| Backend {
                addr: Ipv4Addr::new(10, 244, 0, i),
                port: 8080,
            })
            .collect()
    }

    fn shares(table: &[u32], count: usize) -> Vec<usize> {
        let mut shares = vec![0; count];
        for slot in table {
            shares[*slot as usize] += 1;
        }
        shares
    }

    #[test]
    fn every_bucket_is_filled_with_an_even_share() {
        for count in [1u8, 2, 3, 7, 10] {
            let table = table(&backends(count));
            assert_eq!(table.len(), MAGLEV_TABLE_SIZE);
            let shares = shares(&table, count.into());
            let (min, max) = (shares.iter().min().unwrap(), shares.iter().max().unwrap());
            // Maglev guarantees shares differ by at most one round of the fill.
            assert!(max - min <= 1, "{count} backends: {shares:?}");
        }
    }

    #[test]
    fn removing_a_backend_moves_little_more_than_its_share() {
        let all = backends(10);
        let before = table(&all);
        let mut fewer = all.clone();
        let removed = fewer.remove(4);
        let after = table(&fewer);
        let mut moved = 0;
        for (old, new) in before.iter().zip(&after) {
            let old_backend = all[*old as usize];
            let new_backend = fewer[*new as usize];
            if old_backend != removed && old_backend != new_backend {
                moved += 1;
            }
        }
        // Buckets of surviving backends that changed owner: a small fraction of the table.
        assert!(moved * 100 < MAGLEV_TABLE_SIZE * 6, "{moved} buckets moved");
    }

    #[test]
    fn the_table_depends_only_on_the_backends() {
        assert_eq!(table(&backends(5)), table(&backends(5)));
        assert!(table(&[]).is_empty());
        assert_ne!(table(&backends(5)), table(&backends(4)));
    }

    #[test]
    fn a_small_table_is_a_permutation_fill() {
        let table = table_of_size(&backends(3), 7);
        assert_eq!(table.len(), 7);
        assert!(table.iter().all(|slot| *slot < 3));
    }
}
