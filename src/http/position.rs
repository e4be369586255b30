//! The body of `POST /posts/{slug}/position`, parsed and checked: pure, so it
//! is unit-tested here and fuzzed. Every error is a sentence for the client.

use std::fmt;

use serde_json::Value;

use super::fields::Fields;

use crate::ghosts::Token;

/// A checked position update. `token` is `None` when the body's token is not
/// one we could have issued: no live ghost can have it (410).
#[derive(Debug, PartialEq)]
pub struct PositionUpdate {
    pub token: Option<Token>,
    pub pos: f64,
    pub presence: Presence,
}

/// Whether the reader is here, as a position reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Presence {
    /// `Some(true)`: the reader's tabs are hidden or it stopped reading;
    /// `Some(false)`: it is back; `None`: the body did not say.
    pub away: Option<bool>,
    /// The page is about to close its stream to free its connection (a
    /// hidden tab, or a leader tab handing over), and asks the server to
    /// keep its ghost until a stream takes it back or `let_go` passes.
    pub hold: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub enum PositionError {
    NotJson,
    MissingToken,
    MissingPos,
    PosNotANumber,
    PosOutOfRange { blocks: u32 },
    NotABool(&'static str),
}

impl fmt::Display for PositionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PositionError::NotJson => {
                f.write_str("The body must be a JSON object like {\"token\":\"…\",\"pos\":12.37}.")
            }
            PositionError::MissingToken => f.write_str(
                "The body has no \"token\" string; send the token from this stream's hello event.",
            ),
            PositionError::MissingPos => {
                f.write_str("The body has no \"pos\"; send the reading position as a number.")
            }
            PositionError::PosNotANumber => {
                f.write_str("\"pos\" must be a finite number, like 12.37.")
            }
            PositionError::NotABool(field) => {
                write!(f, "\"{field}\" must be true or false, or left out.")
            }
            PositionError::PosOutOfRange { blocks } => {
                write!(
                    f,
                    "\"pos\" must be between 0 and {blocks}, the number of blocks in this post."
                )
            }
        }
    }
}

/// Parses `{"token":"…","pos":12.37}` for a post of `blocks` blocks. Other
/// fields are ignored, so clients can add some without breaking.
pub fn parse_position(body: &[u8], blocks: u32) -> Result<PositionUpdate, PositionError> {
    let object = Fields::parse(body).ok_or(PositionError::NotJson)?;
    let pos = match object.get("pos") {
        None => return Err(PositionError::MissingPos),
        Some(value) => value
            .as_f64()
            .filter(|p| p.is_finite())
            .ok_or(PositionError::PosNotANumber)?,
    };
    if !(0.0..=f64::from(blocks)).contains(&pos) {
        return Err(PositionError::PosOutOfRange { blocks });
    }
    let token = object
        .text("token")
        .ok()
        .flatten()
        .ok_or(PositionError::MissingToken)?;
    // A thousandth of a block is finer than any screen shows, and keeps the
    // numbers short on the wire.
    let pos = ((pos * 1000.0).round() / 1000.0).clamp(0.0, f64::from(blocks));
    let flag = |field: &'static str| match object.get(field) {
        None => Ok(None),
        Some(Value::Bool(value)) => Ok(Some(*value)),
        Some(_) => Err(PositionError::NotABool(field)),
    };
    let away = flag("away")?;
    let hold = flag("hold")?.unwrap_or(false);
    Ok(PositionUpdate {
        token: Token::parse(token),
        pos,
        presence: Presence { away, hold },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "k3x9q2-0123456789abcdef0123456789abcdef";

    #[test]
    fn accepts_the_protocols_body_and_rounds_to_a_thousandth() {
        let body = format!("{{\"token\":\"{TOKEN}\",\"pos\":12.37049,\"extra\":1}}");
        let update = parse_position(body.as_bytes(), 42).expect("valid");
        assert_eq!(update.pos, 12.37);
        assert_eq!(update.token.as_ref().map(Token::as_str), Some(TOKEN));
        for edge in ["0", "42", "0.0", "4.2e1"] {
            let body = format!("{{\"token\":\"{TOKEN}\",\"pos\":{edge}}}");
            assert!(parse_position(body.as_bytes(), 42).is_ok(), "{edge}");
        }
    }

    #[test]
    fn refuses_every_malformed_body_with_its_reason() {
        use PositionError::*;
        let cases: &[(&str, PositionError)] = &[
            ("", NotJson),
            ("not json", NotJson),
            ("[1,2]", NotJson),
            ("{\"token\":\"t\",\"pos\":1", NotJson),
            ("{\"token\":\"t\",\"pos\":NaN}", NotJson),
            ("{\"token\":\"t\"}", MissingPos),
            ("{\"token\":\"t\",\"pos\":\"3\"}", PosNotANumber),
            ("{\"token\":\"t\",\"pos\":null}", PosNotANumber),
            ("{\"token\":\"t\",\"pos\":1e999}", NotJson),
            (
                "{\"token\":\"t\",\"pos\":-0.5}",
                PosOutOfRange { blocks: 10 },
            ),
            (
                "{\"token\":\"t\",\"pos\":10.01}",
                PosOutOfRange { blocks: 10 },
            ),
            ("{\"pos\":1}", MissingToken),
            ("{\"token\":7,\"pos\":1}", MissingToken),
        ];
        for (body, want) in cases {
            assert_eq!(
                parse_position(body.as_bytes(), 10).as_ref().err(),
                Some(want),
                "{body}"
            );
        }
    }

    #[test]
    fn a_token_of_the_wrong_shape_parses_to_no_token() {
        let update = parse_position(b"{\"token\":\"forged\",\"pos\":1}", 10).expect("valid shape");
        assert_eq!(update.token, None);
    }
}
