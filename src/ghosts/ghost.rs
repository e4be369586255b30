//! A ghost's names and colour: a short public id everyone sees, a long secret
//! token only its reader knows, and a colour from a palette that reads well
//! on both themes.

use std::fmt;
use std::sync::Arc;

use rand::Rng;

/// The public name of a ghost: six base-36 characters, e.g. `k3x9q2`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GhostId(Arc<str>);

/// The secret that moves a ghost or resumes it: 128 random bits from a
/// CSPRNG seeded by the operating system (the manager's ChaCha12), as 32 hex
/// characters. Never logged: its `Debug` is redacted.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Token(Arc<str>);

/// A colour as CSS, e.g. `rgba(188, 35, 5, 0.85)`.
pub type Color = &'static str;

const ALPHABET: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// `len` random base-36 characters: short public names (ghost ids, and
/// cluster instances' names).
pub fn base36(rng: &mut impl Rng, len: usize) -> String {
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..36)] as char)
        .collect()
}

impl GhostId {
    pub fn random(rng: &mut impl Rng) -> GhostId {
        GhostId(Arc::from(base36(rng, 6)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// An id from another instance, if it has the shape this server issues.
    pub fn parse(text: &str) -> Option<GhostId> {
        let valid = text.len() == 6 && text.bytes().all(|b| ALPHABET.contains(&b));
        valid.then(|| GhostId(Arc::from(text)))
    }

    #[cfg(test)]
    pub fn for_test(id: &str) -> GhostId {
        GhostId(Arc::from(id))
    }
}

impl fmt::Display for GhostId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Token {
    pub const LEN: usize = 32;

    pub fn random(rng: &mut impl Rng) -> Token {
        let bytes: [u8; 16] = rng.random();
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Token(Arc::from(hex))
    }

    /// Accepts only the shape we issue, so junk never reaches a lookup.
    pub fn parse(text: &str) -> Option<Token> {
        let valid = text.len() == Self::LEN
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        valid.then(|| Token(Arc::from(text)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(…)")
    }
}

/// Sixteen mid-tone hues at 85 % opacity: dark enough to stand out on the
/// light theme's paper, light enough to on the dark theme's ink, and far
/// enough apart that neighbours in a room are told apart.
pub const PALETTE: [Color; 16] = [
    "rgba(214, 69, 65, 0.85)",
    "rgba(232, 125, 40, 0.85)",
    "rgba(201, 151, 0, 0.85)",
    "rgba(120, 165, 30, 0.85)",
    "rgba(46, 160, 67, 0.85)",
    "rgba(0, 160, 145, 0.85)",
    "rgba(0, 145, 200, 0.85)",
    "rgba(52, 110, 220, 0.85)",
    "rgba(106, 90, 205, 0.85)",
    "rgba(150, 80, 200, 0.85)",
    "rgba(200, 70, 160, 0.85)",
    "rgba(225, 85, 125, 0.85)",
    "rgba(150, 110, 70, 0.85)",
    "rgba(80, 140, 125, 0.85)",
    "rgba(175, 115, 205, 0.85)",
    "rgba(95, 125, 175, 0.85)",
];

/// A colour named by another instance, as this palette's own entry (every
/// instance has the same palette; an unknown one gets the first colour).
pub fn palette_color(name: &str) -> Color {
    PALETTE
        .iter()
        .copied()
        .find(|c| *c == name)
        .unwrap_or(PALETTE[0])
}

/// The colour least used in a room (random among the least used), so the
/// first sixteen readers of a post all differ.
pub fn pick_color(in_use: impl Iterator<Item = Color>, rng: &mut impl Rng) -> Color {
    let mut counts = [0usize; PALETTE.len()];
    for color in in_use {
        if let Some(i) = PALETTE.iter().position(|c| *c == color) {
            counts[i] += 1;
        }
    }
    let least = counts.iter().copied().min().unwrap_or(0);
    let choices: Vec<usize> = (0..PALETTE.len()).filter(|i| counts[*i] == least).collect();
    PALETTE[choices[rng.random_range(0..choices.len())]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_128_bit_hex_and_never_printed() {
        let mut rng = rand::rng();
        let token = Token::random(&mut rng);
        assert_eq!(token.as_str().len(), 32);
        assert!(Token::parse(token.as_str()).is_some());
        assert_eq!(format!("{token:?}"), "Token(…)");
        assert_ne!(Token::random(&mut rng), token);
        for bad in ["", "abc", &"g".repeat(32), &"A".repeat(32), &"a".repeat(33)] {
            assert!(Token::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn ids_are_six_base36_characters() {
        let id = GhostId::random(&mut rand::rng());
        assert_eq!(id.as_str().len(), 6);
        assert!(id.as_str().bytes().all(|b| ALPHABET.contains(&b)));
    }

    #[test]
    fn the_first_sixteen_readers_of_a_room_get_sixteen_colours() {
        let mut rng = rand::rng();
        let mut used: Vec<Color> = Vec::new();
        for _ in 0..PALETTE.len() {
            let color = pick_color(used.iter().copied(), &mut rng);
            assert!(!used.contains(&color));
            used.push(color);
        }
    }
}
