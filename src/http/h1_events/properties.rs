//! Property tests: the parser meets every client's first bytes, so it is
//! fed arbitrary bytes and heads shaped like requests.

use super::*;
use proptest::prelude::*;

fn heads() -> impl Strategy<Value = Vec<u8>> {
    let shaped = (
        "(GET|HEAD|POST|get) ",
        "/posts/[a-z0-9/?=&%.-]{0,40}",
        " HTTP/1\\.[01]\r\n",
        prop::collection::vec("[A-Za-z-]{1,12}: [ -~]{0,30}\r\n", 0..6),
        "(\r\n)?",
    )
        .prop_map(|(m, p, v, h, end)| format!("{m}{p}{v}{}{end}", h.concat()).into_bytes());
    prop_oneof![prop::collection::vec(any::<u8>(), 0..600), shaped]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 3000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Whatever a client's first bytes are, parsing them never panics,
    /// and what is taken is exactly a plain `GET /posts/{slug}/events`
    /// whose head fits in what was read.
    #[test]
    fn any_first_bytes_are_parsed_safely(head in heads()) {
        if let Some((length, request)) = parse(&head) {
            prop_assert!(length <= head.len());
            prop_assert_eq!(request.method(), Method::GET);
            prop_assert!(is_events_path(request.uri().path()), "{}", request.uri());
            prop_assert!(head[..length].ends_with(b"\r\n\r\n"));
        }
    }
}
