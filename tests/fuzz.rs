//! Mutation fuzzing, nightly-free: the position body parser and the front
//! matter parser get a seed corpus of valid inputs, mutated at random (bit
//! flips, byte changes, insertions, deletions, truncations, splices), and
//! must never panic and never accept what breaks their promises. Bounded in
//! count; the seed is printed so a failure can be replayed with
//! `GHOSTREAD_FUZZ_SEED=<seed> cargo test --test fuzz`.

use ghostread::blog::FrontMatter;
use ghostread::position::parse_position;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn seed() -> u64 {
    let seed = std::env::var("GHOSTREAD_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    println!("GHOSTREAD_FUZZ_SEED={seed}");
    seed
}

/// How many inputs each target gets: enough to find shallow bugs on every
/// CI run in a second or two; raise it with GHOSTREAD_FUZZ_RUNS for a soak.
fn runs() -> usize {
    std::env::var("GHOSTREAD_FUZZ_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000)
}

const INTERESTING: &[&[u8]] = &[
    b"\"",
    b"{",
    b"}",
    b"[",
    b"]",
    b":",
    b",",
    b"\\",
    b"\\u0000",
    b"-",
    b"1e308",
    b"1e-400",
    b"-0",
    b"NaN",
    b"Infinity",
    b"null",
    b"true",
    b"\0",
    b"\xff",
    b"\xc3\xa9",
    b"\r\n",
    b"---",
    b"\n",
    b"#",
    b"'",
    b"\xef\xbb\xbf",
];

fn mutate(rng: &mut StdRng, corpus: &[&[u8]]) -> Vec<u8> {
    let mut input = corpus[rng.random_range(0..corpus.len())].to_vec();
    for _ in 0..rng.random_range(1..=4) {
        let at = if input.is_empty() {
            0
        } else {
            rng.random_range(0..=input.len())
        };
        match rng.random_range(0..6) {
            0 if !input.is_empty() => {
                let i = at.min(input.len() - 1);
                input[i] ^= 1 << rng.random_range(0..8);
            }
            1 if !input.is_empty() => {
                let i = at.min(input.len() - 1);
                input[i] = rng.random();
            }
            2 => {
                let piece = INTERESTING[rng.random_range(0..INTERESTING.len())];
                input.splice(at..at, piece.iter().copied());
            }
            3 if !input.is_empty() => {
                let end = (at + rng.random_range(1..8)).min(input.len());
                input.drain(at.min(end)..end);
            }
            4 => input.truncate(at),
            _ => {
                let other = corpus[rng.random_range(0..corpus.len())];
                let from = rng.random_range(0..=other.len());
                input.splice(at..at, other[from..].iter().copied());
            }
        }
    }
    input
}

#[test]
fn the_position_parser_never_panics_and_accepts_only_positions_in_range() {
    let mut rng = StdRng::seed_from_u64(seed());
    let corpus: &[&[u8]] = &[
        br#"{"token":"0123456789abcdef0123456789abcdef","pos":12.37}"#,
        br#"{"pos":0,"token":"0123456789abcdef0123456789abcdef"}"#,
        br#"{"token":"x","pos":1e2,"extra":[1,{"a":null}]}"#,
        br#"{"token":"0123456789abcdef0123456789abcdef","pos":-0.0}"#,
    ];
    for _ in 0..runs() {
        let input = mutate(&mut rng, corpus);
        let blocks = rng.random_range(0..200);
        if let Ok(update) = parse_position(&input, blocks) {
            assert!(
                update.pos.is_finite() && (0.0..=f64::from(blocks)).contains(&update.pos),
                "accepted {} for {blocks} blocks from {:?}",
                update.pos,
                String::from_utf8_lossy(&input)
            );
        }
    }
}

#[test]
fn the_front_matter_parser_never_panics_and_returns_a_suffix_of_its_input() {
    let mut rng = StdRng::seed_from_u64(seed());
    let corpus: &[&[u8]] = &[
        b"---\ntitle: A post\ndate: 2024-02-29\nsummary: \"Quoted: yes\"\ndraft: true\n---\n# Body\n\nText.\n",
        b"---\r\ntitle: 'CRLF'\r\ndate: 2026-11-27\r\n---\r\nBody\r\n",
        b"\xef\xbb\xbf---\ntitle: BOM\ndate: 2000-01-01\n# comment\n\n---\n",
        b"---\ntitle: \xc3\xa9t\xc3\xa9\ndate: 1999-12-31\n---",
    ];
    for _ in 0..runs() {
        let input = mutate(&mut rng, corpus);
        let Ok(text) = std::str::from_utf8(&input) else {
            continue;
        };
        if let Ok((meta, body)) = FrontMatter::parse(text) {
            assert!(
                !meta.title.is_empty(),
                "an empty title was accepted from {text:?}"
            );
            assert!(
                text.ends_with(body),
                "the body is the rest of the file: {text:?}"
            );
            assert!(meta.date.month >= 1 && meta.date.month <= 12 && meta.date.day >= 1);
        }
    }
}
