//! What a page draws of a crowded room (docs/PROTOCOL.md, "Crowded rooms"):
//! a band per block at one of a few levels, and the counts as people read
//! them. A crowded room sends a `density` only when this changes (and now
//! and then, so pages never drift): a band that grows from 412 readers to
//! 413, or "10.2k reading now" becoming 10,235, looks the same, and costs
//! every reader's connection a write for nothing.

use std::time::Duration;

use crate::events::Readers;

/// How often a crowded room whose exact counts changed, with nothing a
/// page draws, sends them anyway.
pub const REFRESH: Duration = Duration::from_secs(5);

/// A band's level: 0 for an empty block, then one more for each doubling
/// (1; 2–3; 4–7; 8–15; …): the steps an eye tells apart in a bar's length.
pub fn level(readers: u32) -> u8 {
    match readers {
        0 => 0,
        n => 32 - n.leading_zeros() as u8, // ok: at most 32
    }
}

/// A count as a page shows it: exact below 1,000, then in thousands with
/// one decimal ("10.2k"), then in millions ("1.3M"); the number shown,
/// in readers (10,200 for "10.2k"). Truncated, never rounded up, so
/// 999,999 is "999.9k", not "1000.0k".
pub fn shown(n: u64) -> u64 {
    match n {
        0..1_000 => n,
        1_000..1_000_000 => n / 100 * 100,
        _ => n / 100_000 * 100_000,
    }
}

/// What a page draws of a crowded room that matters to the eye: its
/// bands' levels and the shown "reading now". The all-time total, which a
/// viral post's arrivals move many times a second, waits for the refresh.
#[derive(Debug, PartialEq, Eq)]
pub struct Sight {
    levels: Vec<u8>,
    now: u64,
}

impl Sight {
    pub fn of(counts: &[u32], readers: Readers) -> Sight {
        Sight {
            levels: counts.iter().map(|n| level(*n)).collect(),
            now: shown(readers.now),
        }
    }

    /// What pages draw now, having drawn `self`: a band keeps its level
    /// while its count stays within a quarter of that level's range, so a
    /// block hovering at 256 readers does not flip between two lengths at
    /// every move. An empty block filling, or emptying, always shows.
    pub fn next(&self, counts: &[u32], readers: Readers) -> Sight {
        let levels = counts
            .iter()
            .enumerate()
            .map(|(i, n)| match self.levels.get(i) {
                Some(&was) if was > 0 && *n > 0 && within(was, *n) => was,
                _ => level(*n),
            })
            .collect();
        Sight {
            levels,
            now: shown(readers.now),
        }
    }
}

/// Whether `n` readers are within a quarter of level `was`'s range
/// (`2^(was-1)` to `2^was - 1` readers) on either side.
fn within(was: u8, n: u32) -> bool {
    let low = 1u64 << (was - 1);
    let high = 1u64 << was;
    let n = u64::from(n);
    n >= low - low / 4 && n < high + high / 4
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::count_text as text;

    #[test]
    fn bands_have_a_level_per_doubling() {
        let levels: Vec<u8> = [0, 1, 2, 3, 4, 7, 8, 412, 413, 512, u32::MAX]
            .into_iter()
            .map(level)
            .collect();
        assert_eq!(levels, [0, 1, 2, 2, 3, 3, 4, 9, 9, 10, 32]);
    }

    #[test]
    fn large_counts_are_shown_as_people_read_them() {
        for (n, want, text_want) in [
            (0, 0, "0"),
            (999, 999, "999"),
            (1_000, 1_000, "1k"),
            (1_250, 1_200, "1.2k"),
            (10_234, 10_200, "10.2k"),
            (10_235, 10_200, "10.2k"),
            (999_999, 999_900, "999.9k"),
            (1_000_000, 1_000_000, "1M"),
            (1_350_000, 1_300_000, "1.3M"),
        ] {
            assert_eq!(shown(n), want, "{n}");
            assert_eq!(text(n), text_want, "{n}");
        }
    }

    #[test]
    fn a_band_at_a_levels_edge_does_not_flip_at_every_move() {
        let readers = Readers {
            now: 600,
            total: 600,
        };
        let drawn = Sight::of(&[256, 3, 1], readers);
        assert_eq!(drawn.levels, [9, 2, 1]);
        // 255 is level 8, but within a quarter of level 9's range: kept.
        assert_eq!(drawn.next(&[255, 3, 1], readers), drawn);
        assert_eq!(drawn.next(&[192, 3, 1], readers), drawn);
        assert_ne!(drawn.next(&[191, 3, 1], readers), drawn, "clearly smaller");
        assert_ne!(drawn.next(&[256, 3, 0], readers), drawn, "a block emptied");
        assert_ne!(
            drawn.next(&[256, 5, 1], readers),
            drawn,
            "3 readers became 5"
        );
    }

    #[test]
    fn a_sight_changes_only_with_what_a_page_draws() {
        let readers = |now| Readers { now, total: 20_000 };
        let a = Sight::of(&[412, 0, 3], readers(10_234));
        assert_eq!(a, Sight::of(&[413, 0, 2], readers(10_235)));
        assert_ne!(
            a,
            Sight::of(&[412, 1, 3], readers(10_234)),
            "an empty block filled"
        );
        assert_ne!(
            a,
            Sight::of(&[412, 0, 4], readers(10_234)),
            "a band changed level"
        );
        assert_ne!(
            a,
            Sight::of(&[412, 0, 3], readers(10_300)),
            "10.2k became 10.3k"
        );
    }
}
