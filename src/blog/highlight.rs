//! Code blocks coloured on the server, once when a post loads, like the
//! rest of its rendering: no JavaScript on the page. syntect (the
//! highlighter of bat and Zola) reads Sublime Text grammars for a hundred or
//! so languages; it writes CSS classes (`hl-keyword`, `hl-string`, …), not
//! colours, so `web/ghostread.css` colours them for the light and the dark
//! theme alike.

use std::sync::OnceLock;

use syntect::html::{ClassStyle, ClassedHTMLGenerator};
use syntect::parsing::SyntaxSet;
use syntect::util::LinesWithEndings;

use super::escape::escape_html;

/// Every class starts with `hl-`, so none clashes with the site's own.
const CLASSES: ClassStyle = ClassStyle::SpacedPrefixed { prefix: "hl-" };

/// The grammars, loaded once (a few tens of ms) by the first post that
/// needs them.
fn syntaxes() -> &'static SyntaxSet {
    static SET: OnceLock<SyntaxSet> = OnceLock::new();
    SET.get_or_init(SyntaxSet::load_defaults_newlines)
}

/// A code block's HTML: `<pre><code>`, with the language as a class
/// (`language-rust`) and, when the language is known, highlighted. The
/// `pre` takes keyboard focus (`tabindex="0"`): a line wider than the
/// column scrolls, and a keyboard reader must be able to scroll it too.
pub fn code_block(language: Option<&str>, code: &str) -> String {
    // Only a plain token names a language (it goes into a class).
    let language = language.filter(|l| {
        !l.is_empty()
            && l.len() <= 32
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+#-_.".contains(&b))
    });
    let class = language
        .map(|l| format!(" class=\"language-{}\"", l.to_ascii_lowercase()))
        .unwrap_or_default();
    let body = language
        .and_then(|l| highlighted(l, code))
        .unwrap_or_else(|| escape_html(code));
    format!("<pre tabindex=\"0\"><code{class}>{body}</code></pre>\n")
}

fn highlighted(language: &str, code: &str) -> Option<String> {
    let set = syntaxes();
    let syntax = set
        .find_syntax_by_token(language)
        .or_else(|| set.find_syntax_by_token(&language.to_ascii_lowercase()))?;
    let mut html = ClassedHTMLGenerator::new_with_class_style(syntax, set, CLASSES);
    for line in LinesWithEndings::from(code) {
        // A grammar that fails on this text leaves the block plain.
        html.parse_html_for_line_which_includes_newline(line).ok()?;
    }
    Some(html.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_is_highlighted_with_classes_and_unknown_languages_stay_plain() {
        let html = code_block(
            Some("rust"),
            "fn main() {\n    let x = \"<hi>\"; // note\n}\n",
        );
        assert!(
            html.starts_with("<pre tabindex=\"0\"><code class=\"language-rust\">"),
            "{html}"
        );
        assert!(
            html.contains("<span class=\"hl-storage hl-type hl-function hl-rust\">fn</span>"),
            "{html}"
        );
        assert!(html.contains("hl-string"), "{html}");
        assert!(html.contains("hl-comment"), "{html}");
        assert!(html.contains("&lt;hi&gt;"), "escaped: {html}");
        assert!(!html.contains("style="), "classes, never inline colours");

        let plain = code_block(Some("no-such-language"), "a < b\n");
        assert_eq!(
            plain,
            "<pre tabindex=\"0\"><code class=\"language-no-such-language\">a &lt; b\n</code></pre>\n"
        );
        assert_eq!(
            code_block(None, "x\n"),
            "<pre tabindex=\"0\"><code>x\n</code></pre>\n"
        );
        let hostile = code_block(Some("\"><script>"), "x\n");
        assert_eq!(hostile, "<pre tabindex=\"0\"><code>x\n</code></pre>\n");
    }
}
