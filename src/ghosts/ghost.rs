//! A ghost's names and colour: a short public id everyone sees, a long secret
//! token only its reader knows, and a colour from a palette that reads well
//! on both themes.

use std::fmt;
use std::sync::Arc;

use rand::Rng;

/// The public name of a ghost: six base-36 characters, e.g. `k3x9q2`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GhostId(Arc<str>);

/// The secret that moves a ghost or resumes it: the ghost's public id as it
/// was issued, a `-`, and 128 random bits from a CSPRNG seeded by the
/// operating system (the manager's ChaCha12) as 32 hex characters. The id
/// is only a hint, which lets another instance of a cluster find where the
/// ghost lives (see `remote.rs`); the random part is the secret. Never
/// logged: its `Debug` is redacted.
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
    /// A new token for the ghost `id`.
    pub fn for_ghost(id: &GhostId, rng: &mut impl Rng) -> Token {
        Token(Arc::from(format!("{}-{}", id.as_str(), random_hex(rng))))
    }

    /// Accepts only the shape we issue, so junk never reaches a lookup.
    pub fn parse(text: &str) -> Option<Token> {
        let (id, secret) = text.split_once('-')?;
        let valid = GhostId::parse(id).is_some() && is_secret_hex(secret);
        valid.then(|| Token(Arc::from(text)))
    }

    /// The id the ghost had when this token was issued. A hint only: a
    /// resumed ghost whose id was taken meanwhile has a new one.
    pub fn issued_to(&self) -> Option<GhostId> {
        GhostId::parse(self.0.split_once('-')?.0)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// 128 random bits as 32 lowercase hex characters.
pub fn random_hex(rng: &mut impl Rng) -> String {
    let bytes: [u8; 16] = rng.random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `text` has the shape `random_hex` gives.
pub fn is_secret_hex(text: &str) -> bool {
    text.len() == 32
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
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
    fn tokens_are_the_id_and_128_bits_of_hex_and_never_printed() {
        let mut rng = rand::rng();
        let id = GhostId::random(&mut rng);
        let token = Token::for_ghost(&id, &mut rng);
        assert_eq!(token.as_str().len(), 6 + 1 + 32);
        assert!(Token::parse(token.as_str()).is_some());
        assert_eq!(token.issued_to(), Some(id.clone()));
        assert_eq!(format!("{token:?}"), "Token(…)");
        assert_ne!(Token::for_ghost(&id, &mut rng), token);
        let hex = "a".repeat(32);
        for bad in [
            String::new(),
            "abc".into(),
            hex.clone(),
            format!("abcdef-{}", "g".repeat(32)),
            format!("abcdef-{}", "A".repeat(32)),
            format!("abcdef-{hex}a"),
            format!("ABCDEF-{hex}"),
            format!("abcde-{hex}"),
            format!("abcdef{hex}"),
            format!("abcdef--{hex}"),
        ] {
            assert!(Token::parse(&bad).is_none(), "{bad}");
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
