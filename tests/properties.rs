//! Property tests of the two parsers that read what strangers send or write:
//! the position body (every POST) and a post's front matter (every file in
//! the posts folder). proptest generates inputs, both arbitrary and shaped
//! like the real thing, and shrinks any failure to a smallest case, which
//! it prints; `PROPTEST_CASES` raises the count for a soak.

use ghostread::internals::{parse_position, FrontMatter};
use proptest::prelude::*;
use serde_json::{json, Value};

const TOKEN: &str = "k3x9q2-0123456789abcdef0123456789abcdef";

/// Any JSON value, a few levels deep: what a confused or hostile client
/// might put in a body or a field.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,40}".prop_map(Value::from),
        Just(Value::from(TOKEN)),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("token|pos|id|[a-z]{1,6}", inner, 0..6)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// A body with the protocol's fields, each either right or any JSON.
fn body_like_a_position() -> impl Strategy<Value = Value> {
    let token = prop_oneof![Just(Value::from(TOKEN)), any_json()];
    let pos = prop_oneof![(-10.0f64..300.0).prop_map(Value::from), any_json()];
    (token, pos, any_json())
        .prop_map(|(token, pos, extra)| json!({"token": token, "pos": pos, "extra": extra}))
}

proptest! {
    // Failures are printed, shrunk, not saved to files in the source tree.
    #![proptest_config(ProptestConfig {
        cases: 2000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn any_bytes_never_panic_and_nothing_out_of_range_is_accepted(
        body in prop::collection::vec(any::<u8>(), 0..200),
        blocks in 0u32..200,
    ) {
        if let Ok(update) = parse_position(&body, blocks) {
            prop_assert!(update.pos.is_finite());
            prop_assert!((0.0..=f64::from(blocks)).contains(&update.pos));
        }
    }

    #[test]
    fn a_body_with_the_right_fields_is_accepted_only_in_range(
        body in body_like_a_position(),
        blocks in 0u32..200,
    ) {
        let bytes = serde_json::to_vec(&body).expect("serializable");
        let pos = body["pos"].as_f64();
        let in_range = pos.is_some_and(|p| (0.0..=f64::from(blocks)).contains(&p));
        let has_token = body["token"].is_string();
        match parse_position(&bytes, blocks) {
            Ok(update) => {
                prop_assert!(in_range && has_token, "accepted {body}");
                prop_assert!((0.0..=f64::from(blocks)).contains(&update.pos));
                let asked = pos.unwrap_or(f64::NAN);
                prop_assert!((update.pos - asked).abs() <= 0.0005, "{asked} became {}", update.pos);
                prop_assert_eq!(update.token.is_some(), body["token"] == TOKEN);
            }
            Err(_) => prop_assert!(!(in_range && has_token), "refused {body}"),
        }
    }

    #[test]
    fn a_position_is_rounded_to_a_thousandth_of_a_block(
        blocks in 1u32..500,
        fraction in 0.0f64..=1.0,
    ) {
        let asked = f64::from(blocks) * fraction;
        let body = json!({"token": TOKEN, "pos": asked}).to_string();
        let update = parse_position(body.as_bytes(), blocks).expect("in range");
        prop_assert_eq!(update.pos, ((asked * 1000.0).round() / 1000.0).min(f64::from(blocks)));
    }

    #[test]
    fn any_text_as_front_matter_never_panics_and_keeps_its_promises(text in "(?s).{0,300}") {
        check_front_matter(&text)?;
    }

    #[test]
    fn front_matter_shaped_text_parses_to_what_it_says(
        title in "[A-Za-z0-9 ,.!?-]{0,40}",
        (year, month, day) in (1000u16..9999, 1u8..=12, 1u8..=28),
        quote in prop::sample::select(vec!["", "\"", "'"]),
        newline in prop::sample::select(vec!["\n", "\r\n"]),
        body in "(?s).{0,80}",
    ) {
        let text = format!(
            "---{newline}title: {quote}{title}{quote}{newline}date: {year:04}-{month:02}-{day:02}{newline}---{newline}{body}"
        );
        let parsed = FrontMatter::parse(&text);
        if title.trim().is_empty() {
            prop_assert!(parsed.is_err(), "an empty title was accepted from {text:?}");
        } else {
            let (meta, rest) = parsed.map_err(|e| TestCaseError::fail(format!("{e} for {text:?}")))?;
            // Quotes keep the title's spaces; a bare value is trimmed.
            let expected = if quote.is_empty() { title.trim() } else { title.as_str() };
            prop_assert_eq!(meta.title, expected);
            prop_assert_eq!((meta.date.year, meta.date.month, meta.date.day), (year, month, day));
            prop_assert_eq!(rest, body.as_str());
        }
    }

    #[test]
    fn front_matter_with_mangled_lines_never_panics(
        lines in prop::collection::vec(
            prop_oneof![
                Just("---".to_string()),
                Just("title: A post".to_string()),
                Just("date: 2024-02-29".to_string()),
                Just("date: 2023-02-29".to_string()),
                Just("draft: true".to_string()),
                Just("summary: \"Quoted: yes\"".to_string()),
                Just("# comment".to_string()),
                ".{0,30}",
            ],
            0..10,
        ),
        newline in prop::sample::select(vec!["\n", "\r\n", "\r"]),
        bom in any::<bool>(),
    ) {
        let text = format!("{}{}", if bom { "\u{feff}" } else { "" }, lines.join(newline));
        check_front_matter(&text)?;
    }
}

/// Whatever the input, a front matter that parses has a title, a real
/// date, and leaves the rest of the file as the body.
fn check_front_matter(text: &str) -> Result<(), TestCaseError> {
    if let Ok((meta, body)) = FrontMatter::parse(text) {
        prop_assert!(
            !meta.title.trim().is_empty(),
            "an empty title was accepted from {text:?}"
        );
        prop_assert!(
            text.ends_with(body),
            "the body is the rest of the file: {text:?}"
        );
        prop_assert!((1..=12).contains(&meta.date.month) && meta.date.day >= 1);
    }
    Ok(())
}
