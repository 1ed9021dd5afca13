//! Shard math: how a table's int32 hash space is cut into shards, which shard owns a hash
//! value, and how shards are spread over nodes.
//!
//! A distribution value is hashed with its type's default hash function to an `i32`. A table
//! with `n` shards cuts the 2^32 hash values into `n` equal, contiguous ranges, the first
//! starting at `i32::MIN` and the last ending at `i32::MAX` (the last one takes the remainder).
//! Tables in one colocation group have the same shard count and so the same ranges, which is
//! what lets their shards with the same index live together on one node.

/// The largest shard count accepted (as Citus).
pub const MAX_SHARD_COUNT: i32 = 64_000;

/// The inclusive hash range of one shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashRange {
    pub min: i32,
    pub max: i32,
}

impl HashRange {
    pub fn contains(&self, hash: i32) -> bool {
        self.min <= hash && hash <= self.max
    }
}

/// Checks a shard count given by a user.
pub fn check_shard_count(count: i32) -> Result<(), String> {
    if (1..=MAX_SHARD_COUNT).contains(&count) {
        Ok(())
    } else {
        Err(format!(
            "shard_count {count} is out of range: it must be between 1 and {MAX_SHARD_COUNT}"
        ))
    }
}

/// The width of every shard's range but the last, for `count` shards.
fn increment(count: i32) -> i64 {
    (1i64 << 32) / i64::from(count)
}

/// The hash ranges of `count` shards, in shard index order.
pub fn shard_ranges(count: i32) -> Vec<HashRange> {
    assert!(count >= 1, "shard count must be positive");
    let step = increment(count);
    (0..i64::from(count))
        .map(|i| {
            let min = i64::from(i32::MIN) + i * step;
            let max = if i == i64::from(count) - 1 {
                i64::from(i32::MAX)
            } else {
                min + step - 1
            };
            HashRange {
                min: min as i32,
                max: max as i32,
            }
        })
        .collect()
}

/// The index of the shard that owns `hash`, for a table with `count` equal shards.
/// Constant time: no search over the ranges.
pub fn shard_index_for_hash(hash: i32, count: i32) -> usize {
    assert!(count >= 1, "shard count must be positive");
    let offset = i64::from(hash) - i64::from(i32::MIN);
    let idx = offset / increment(count);
    // The last shard also takes the remainder of the division.
    idx.min(i64::from(count) - 1) as usize
}

/// The index of the shard whose stored range holds `hash`, by binary search over `ranges`
/// (sorted by `min`, not overlapping; any widths, as after a split or a move). `None` when no
/// range holds it (a gap in the catalog).
pub fn find_shard(ranges: &[HashRange], hash: i32) -> Option<usize> {
    // The first range that starts after `hash`; the one before it is the candidate.
    let after = ranges.partition_point(|r| r.min <= hash);
    let i = after.checked_sub(1)?;
    ranges[i].contains(hash).then_some(i)
}

/// The distribution column's attribute number in a `pg_dist_partition.partkey`: the text of
/// the column's Var node, as Citus stores it (`{VAR :varno 1 :varattno 2 ...}`), or a bare
/// attribute number (the form older Tessera catalogs hold).
pub fn partkey_attnum(partkey: &str) -> Option<i16> {
    let k = partkey.trim();
    if let Ok(n) = k.parse::<i16>() {
        return Some(n);
    }
    if !k.starts_with("{VAR ") {
        return None;
    }
    let rest = &k[k.find(":varattno ")? + ":varattno ".len()..];
    let digits: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '-')
        .collect();
    digits.parse().ok()
}

/// Spreads `shard_count` shards over `groups` round-robin, starting at a position that depends
/// on the colocation group, so that many small groups do not all start on the first node.
/// Returns the group of each shard, in shard index order.
pub fn place_round_robin(shard_count: usize, groups: &[i32], start: usize) -> Vec<i32> {
    assert!(
        !groups.is_empty(),
        "there must be at least one node to place shards on"
    );
    (0..shard_count)
        .map(|i| groups[(start + i) % groups.len()])
        .collect()
}

/// The name of shard `shard_id` of a table (or index, or constraint) named `table`:
/// `<table>_<shardid>`. PostgreSQL names are at most 63 bytes; a longer result keeps the name's
/// first bytes (cut at a character boundary), then `_`, PostgreSQL's `hash_any` of the whole
/// name in 8 hex digits, then the suffix: the names Citus gives, so tools that compute shard
/// names (and users who read them) find the same tables.
pub fn shard_name(table: &str, shard_id: i64) -> String {
    const NAMEDATALEN: usize = 64;
    let suffix = format!("_{shard_id}");
    if table.len() + suffix.len() < NAMEDATALEN {
        return format!("{table}{suffix}");
    }
    let mut cut = (NAMEDATALEN - suffix.len() - 10).min(table.len());
    while !table.is_char_boundary(cut) {
        cut -= 1;
    }
    format!(
        "{}_{:08x}{suffix}",
        &table[..cut],
        hash_any(table.as_bytes())
    )
}

/// PostgreSQL's `hash_any` (`hash_bytes`: Bob Jenkins' lookup3 hash), as PostgreSQL computes
/// it on a little-endian machine: `hashtext(s)` for a text in a deterministic collation.
pub fn hash_any(k: &[u8]) -> u32 {
    fn mix(a: &mut u32, b: &mut u32, c: &mut u32) {
        *a = a.wrapping_sub(*c);
        *a ^= c.rotate_left(4);
        *c = c.wrapping_add(*b);
        *b = b.wrapping_sub(*a);
        *b ^= a.rotate_left(6);
        *a = a.wrapping_add(*c);
        *c = c.wrapping_sub(*b);
        *c ^= b.rotate_left(8);
        *b = b.wrapping_add(*a);
        *a = a.wrapping_sub(*c);
        *a ^= c.rotate_left(16);
        *c = c.wrapping_add(*b);
        *b = b.wrapping_sub(*a);
        *b ^= a.rotate_left(19);
        *a = a.wrapping_add(*c);
        *c = c.wrapping_sub(*b);
        *c ^= b.rotate_left(4);
        *b = b.wrapping_add(*a);
    }
    fn finish(a: &mut u32, b: &mut u32, c: &mut u32) {
        *c ^= *b;
        *c = c.wrapping_sub(b.rotate_left(14));
        *a ^= *c;
        *a = a.wrapping_sub(c.rotate_left(11));
        *b ^= *a;
        *b = b.wrapping_sub(a.rotate_left(25));
        *c ^= *b;
        *c = c.wrapping_sub(b.rotate_left(16));
        *a ^= *c;
        *a = a.wrapping_sub(c.rotate_left(4));
        *b ^= *a;
        *b = b.wrapping_sub(a.rotate_left(14));
        *c ^= *b;
        *c = c.wrapping_sub(b.rotate_left(24));
    }
    let word = |w: &[u8]| u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
    let init = 0x9e37_79b9u32
        .wrapping_add(k.len() as u32)
        .wrapping_add(3_923_095);
    let (mut a, mut b, mut c) = (init, init, init);
    let mut rest = k;
    while rest.len() >= 12 {
        a = a.wrapping_add(word(&rest[0..4]));
        b = b.wrapping_add(word(&rest[4..8]));
        c = c.wrapping_add(word(&rest[8..12]));
        mix(&mut a, &mut b, &mut c);
        rest = &rest[12..];
    }
    // The last 0-11 bytes, little-endian; the lowest byte of c is left for the length.
    let byte = |i: usize, shift: u32| rest.get(i).map_or(0, |&v| u32::from(v) << shift);
    a = a.wrapping_add(byte(0, 0) + byte(1, 8) + byte(2, 16) + byte(3, 24));
    b = b.wrapping_add(byte(4, 0) + byte(5, 8) + byte(6, 16) + byte(7, 24));
    c = c.wrapping_add(byte(8, 8) + byte(9, 16) + byte(10, 24));
    finish(&mut a, &mut b, &mut c);
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values of PostgreSQL's `to_hex(hashtext(s))`.
    #[test]
    fn hash_any_is_postgresqls() {
        for (s, h) in [
            ("", 0xa7ea466d),
            ("a", 0x401370b1),
            ("abc", 0xd12feb97),
            ("abcd", 0xe885082c),
            ("abcdefgh", 0x8b1e9c33),
            ("abcdefghijk", 0xa78ef3d3),
            ("abcdefghijkl", 0xa1763ad4),
            ("abcdefghijklm", 0x1830c6d0),
            (
                "too_long_12345678901234567890123456789012345678901234567890",
                0xe0119164,
            ),
            (
                "é_ünïcödé_名前_very_long_table_name_that_is_more_than_enough_bytes",
                0xaa277477,
            ),
        ] {
            assert_eq!(hash_any(s.as_bytes()), h, "{s:?}");
        }
    }

    #[test]
    fn long_shard_names_are_cut_and_hashed_as_citus_does() {
        assert_eq!(shard_name("events", 102008), "events_102008");
        let long = "too_long_12345678901234567890123456789012345678901234567890";
        let n = shard_name(long, 225000);
        // 64 - len("_225000") - 10 = 47 bytes of the name, the hash, the suffix.
        assert_eq!(n, format!("{}_e0119164_225000", &long[..47]));
        assert!(n.len() <= 63);
        let u = "é_ünïcödé_名前_very_long_table_name_that_is_more_than_enough_bytes";
        let n = shard_name(u, 102008);
        assert!(n.len() <= 63 && n.ends_with("_aa277477_102008"), "{n}");
        // At the limit: 56 bytes + "_102008" = 63 fits whole; 57 does not.
        assert_eq!(shard_name(&"x".repeat(56), 102008).len(), 63);
        assert!(shard_name(&"x".repeat(57), 102008)
            .contains(&format!("_{:08x}_", hash_any("x".repeat(57).as_bytes()))));
    }

    #[test]
    fn ranges_cover_the_hash_space_without_gaps() {
        for count in [1, 2, 3, 7, 32, 33, 1000, MAX_SHARD_COUNT] {
            let r = shard_ranges(count);
            assert_eq!(r.len(), count as usize);
            assert_eq!(r[0].min, i32::MIN);
            assert_eq!(r.last().unwrap().max, i32::MAX);
            for w in r.windows(2) {
                assert_eq!(i64::from(w[0].max) + 1, i64::from(w[1].min));
            }
        }
    }

    #[test]
    fn thirty_two_shards_match_citus_ranges() {
        let r = shard_ranges(32);
        assert_eq!(
            r[0],
            HashRange {
                min: -2147483648,
                max: -2013265921
            }
        );
        assert_eq!(
            r[16],
            HashRange {
                min: 0,
                max: 134217727
            }
        );
        assert_eq!(r[31].max, 2147483647);
    }

    #[test]
    fn index_for_hash_agrees_with_the_ranges() {
        for count in [1, 3, 7, 32, 1000] {
            let ranges = shard_ranges(count);
            let probes = [
                i32::MIN,
                i32::MIN + 1,
                -1,
                0,
                1,
                i32::MAX - 1,
                i32::MAX,
                123_456_789,
                -987_654_321,
            ];
            for h in probes {
                let i = shard_index_for_hash(h, count);
                assert!(ranges[i].contains(h), "hash {h} count {count} -> {i}");
            }
            for r in &ranges {
                assert_eq!(
                    ranges[shard_index_for_hash(r.min, count)],
                    *r,
                    "range start maps to its own shard"
                );
                assert_eq!(ranges[shard_index_for_hash(r.max, count)], *r);
            }
        }
    }

    #[test]
    fn find_shard_on_uniform_ranges() {
        for count in [1, 2, 3, 32] {
            let ranges = shard_ranges(count);
            for h in [i32::MIN, -1, 0, 1, i32::MAX] {
                assert_eq!(find_shard(&ranges, h), Some(shard_index_for_hash(h, count)));
            }
        }
        let gap = [HashRange { min: 0, max: 9 }, HashRange { min: 20, max: 29 }];
        assert_eq!(find_shard(&gap, -1), None);
        assert_eq!(find_shard(&gap, 15), None);
        assert_eq!(find_shard(&gap, 30), None);
        assert_eq!(find_shard(&gap, 20), Some(1));
        assert_eq!(find_shard(&[], 5), None);
    }

    /// Contiguous ranges covering the hash space, cut at `cuts` (each cut starts a range).
    fn ranges_from_cuts(mut cuts: Vec<i32>) -> Vec<HashRange> {
        cuts.retain(|c| *c != i32::MIN);
        cuts.sort_unstable();
        cuts.dedup();
        let mut starts = vec![i32::MIN];
        starts.extend(cuts);
        starts
            .iter()
            .enumerate()
            .map(|(i, &min)| HashRange {
                min,
                max: starts.get(i + 1).map_or(i32::MAX, |next| next - 1),
            })
            .collect()
    }

    proptest::proptest! {
        #[test]
        fn find_shard_matches_the_arithmetic_on_uniform_ranges(count in 1i32..2000, hash in proptest::num::i32::ANY) {
            let ranges = shard_ranges(count);
            proptest::prop_assert_eq!(find_shard(&ranges, hash), Some(shard_index_for_hash(hash, count)));
        }

        #[test]
        fn find_shard_finds_the_holder_on_any_ranges(
            cuts in proptest::collection::vec(proptest::num::i32::ANY, 0..64),
            hash in proptest::num::i32::ANY,
        ) {
            let ranges = ranges_from_cuts(cuts);
            let found = find_shard(&ranges, hash);
            let linear = ranges.iter().position(|r| r.contains(hash));
            proptest::prop_assert_eq!(found, linear);
            proptest::prop_assert!(found.is_some(), "contiguous ranges hold every hash");
        }

        #[test]
        fn find_shard_sees_gaps(
            cuts in proptest::collection::vec(proptest::num::i32::ANY, 1..32),
            drop in 0usize..32,
            hash in proptest::num::i32::ANY,
        ) {
            let mut ranges = ranges_from_cuts(cuts);
            let removed = ranges.remove(drop % ranges.len());
            let found = find_shard(&ranges, hash);
            proptest::prop_assert_eq!(found, ranges.iter().position(|r| r.contains(hash)));
            if removed.contains(hash) {
                proptest::prop_assert_eq!(found, None);
            }
        }
    }

    #[test]
    fn partkey_attnum_reads_var_text_and_numbers() {
        assert_eq!(
            partkey_attnum("{VAR :varno 1 :varattno 3 :vartype 20 :vartypmod -1 :varcollid 0 :varlevelsup 0 :varnosyn 1 :varattnosyn 3 :location -1}"),
            Some(3)
        );
        assert_eq!(partkey_attnum("2"), Some(2));
        assert_eq!(partkey_attnum("{VAR :varno 1}"), None);
        assert_eq!(partkey_attnum("{CONST :consttype 23}"), None);
        assert_eq!(partkey_attnum(""), None);
    }

    #[test]
    fn shard_counts_are_checked() {
        assert!(check_shard_count(32).is_ok());
        assert!(check_shard_count(0).is_err());
        assert!(check_shard_count(64_001).is_err());
    }

    #[test]
    fn round_robin_spreads_evenly() {
        let g = place_round_robin(32, &[1, 2, 3, 4], 0);
        for group in [1, 2, 3, 4] {
            assert_eq!(g.iter().filter(|x| **x == group).count(), 8);
        }
        assert_eq!(place_round_robin(3, &[1, 2], 1), vec![2, 1, 2]);
    }

    #[test]
    fn shard_names_fit_in_63_bytes_and_stay_unique() {
        assert_eq!(shard_name("events", 102008), "events_102008");
        let long = "x".repeat(80);
        let a = shard_name(&long, 102008);
        assert!(a.len() <= 63, "{a}");
        assert!(a.ends_with("_102008"));
        let other = format!("{}y", "x".repeat(79));
        assert_ne!(
            shard_name(&other, 102008),
            a,
            "names that share a prefix differ"
        );
        let unicode = "é".repeat(40);
        let u = shard_name(&unicode, 7);
        assert!(u.len() <= 63);
        assert!(u.is_char_boundary(u.len()));
    }
}
