//! Markdown to article HTML, once per post load. Every top-level block gets
//! `data-block="<index>"` so the browser can anchor ghost positions to
//! paragraphs rather than pixels (see `docs/PROTOCOL.md`, "Positions").

use pulldown_cmark::{CodeBlockKind, CowStr, Event, Options, Parser, Tag, TagEnd};

use super::escape::escape_html;
use super::highlight;

/// A post body rendered to HTML.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    /// The article's HTML: a sequence of top-level blocks, each marked.
    pub html: String,
    /// How many blocks carry a `data-block` marker (the protocol's `blocks`).
    pub blocks: u32,
    /// Words of prose, for the reading time.
    pub words: usize,
    /// The top-level headings: block index, level (1–6) and text.
    pub outline: Vec<(u32, u8, String)>,
}

/// Renders Markdown with tables, footnotes, strikethrough, task lists and
/// heading anchors. A paragraph holding only an image becomes a `<figure>`
/// whose caption is the image's title (or its alt text).
pub fn render_markdown(markdown: &str) -> Rendered {
    let options = Options::ENABLE_TABLES
        | Options::ENABLE_FOOTNOTES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_HEADING_ATTRIBUTES
        | Options::ENABLE_SMART_PUNCTUATION;
    let mut events: Vec<Event> = Parser::new_ext(markdown, options).collect();
    add_heading_anchors(&mut events);

    let words = events
        .iter()
        .map(|event| match event {
            Event::Text(text) | Event::Code(text) => text.split_whitespace().count(),
            _ => 0,
        })
        .sum();

    let mut html = String::with_capacity(markdown.len() * 3 / 2);
    let mut blocks = 0u32;
    let mut outline = Vec::new();
    for group in top_level_blocks(&events) {
        if let [Event::Start(Tag::Heading { level, .. }), inner @ ..] = group {
            let text: String = inner
                .iter()
                .filter_map(|event| match event {
                    Event::Text(text) | Event::Code(text) => Some(text.as_ref()),
                    _ => None,
                })
                .collect();
            outline.push((blocks, *level as u8, text.trim().to_string()));
        }
        let mut block = String::new();
        let is_block = match group {
            [Event::Start(Tag::Paragraph), Event::Start(Tag::Image { title, .. }), inner @ .., Event::End(TagEnd::Image), Event::End(TagEnd::Paragraph)] =>
            {
                render_figure(&mut block, title, inner, &group[1..group.len() - 1]);
                true
            }
            [Event::Start(Tag::CodeBlock(kind)), inner @ .., Event::End(TagEnd::CodeBlock)] => {
                let language = match kind {
                    CodeBlockKind::Fenced(info) => info.split_whitespace().next(),
                    CodeBlockKind::Indented => None,
                };
                let code: String = inner
                    .iter()
                    .filter_map(|event| match event {
                        Event::Text(text) => Some(text.as_ref()),
                        _ => None,
                    })
                    .collect();
                block.push_str(&highlight::code_block(language, &code));
                true
            }
            [Event::Start(Tag::HtmlBlock), ..] => {
                pulldown_cmark::html::push_html(&mut block, group.iter().cloned());
                is_visible_html(&block)
            }
            _ => {
                pulldown_cmark::html::push_html(&mut block, group.iter().cloned());
                label_task_boxes(&mut block);
                focus_wide_tables(&mut block);
                true
            }
        };
        if is_block {
            mark_block(&mut block, blocks);
            blocks += 1;
        }
        html.push_str(&block);
        if !html.ends_with('\n') {
            html.push('\n');
        }
    }
    Rendered {
        html,
        blocks,
        words,
        outline,
    }
}

/// Splits the event list into runs that each make one top-level block.
fn top_level_blocks<'e, 'a>(events: &'e [Event<'a>]) -> Vec<&'e [Event<'a>]> {
    let mut groups = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, event) in events.iter().enumerate() {
        match event {
            Event::Start(_) => depth += 1,
            Event::End(_) => depth = depth.saturating_sub(1),
            _ => {}
        }
        if depth == 0 {
            groups.push(&events[start..=i]);
            start = i + 1;
        }
    }
    if start < events.len() {
        groups.push(&events[start..]);
    }
    groups
}

/// Puts ` data-block="n"` into the block's first tag, or wraps a block that
/// does not start with one (raw HTML that begins with text).
fn mark_block(block: &mut String, index: u32) {
    let attribute = format!(" data-block=\"{index}\"");
    let trimmed = block.trim_start();
    let offset = block.len() - trimmed.len();
    let mut chars = trimmed.char_indices().skip(1);
    let name_end = match (trimmed.starts_with('<'), chars.next()) {
        (true, Some((_, c))) if c.is_ascii_alphabetic() => chars
            .find(|(_, c)| !c.is_ascii_alphanumeric() && *c != '-')
            .map(|(i, _)| offset + i),
        _ => None,
    };
    match name_end {
        Some(at) => block.insert_str(at, &attribute),
        None => *block = format!("<div{attribute}>{block}</div>\n"),
    }
}

/// A table scrolls sideways when it is wider than the column (the CSS
/// makes it a block with `overflow-x: auto`), so, like a code block, it
/// takes keyboard focus: a keyboard reader scrolls it with the arrows.
fn focus_wide_tables(block: &mut String) {
    if block.starts_with("<table>") {
        block.replace_range(..7, "<table tabindex=\"0\">");
    }
}

/// A task list's checkboxes (drawn, never ticked by the reader) say what
/// they show, for screen readers and for axe's label rule.
fn label_task_boxes(block: &mut String) {
    if block.contains("type=\"checkbox\"") {
        *block = block
            .replace(
                "<input disabled=\"\" type=\"checkbox\" checked=\"\"/>",
                "<input disabled=\"\" type=\"checkbox\" checked=\"\" aria-label=\"done\"/>",
            )
            .replace(
                "<input disabled=\"\" type=\"checkbox\"/>",
                "<input disabled=\"\" type=\"checkbox\" aria-label=\"not done\"/>",
            );
    }
}

/// An HTML block made only of comments draws nothing, so it is not a block a
/// reader can be "at".
fn is_visible_html(html: &str) -> bool {
    let mut rest = html.trim();
    while let Some(after) = rest.strip_prefix("<!--") {
        match after.find("-->") {
            Some(end) => rest = after[end + 3..].trim_start(),
            None => return false,
        }
    }
    !rest.is_empty()
}

fn render_figure(out: &mut String, title: &CowStr, alt: &[Event], image: &[Event]) {
    out.push_str("<figure>");
    let mut img = String::new();
    pulldown_cmark::html::push_html(&mut img, image.iter().cloned());
    // pulldown-cmark writes `<img ... />`; lazy loading keeps long posts light.
    out.push_str(&img.replacen("<img ", "<img loading=\"lazy\" ", 1));
    let caption: String = if title.is_empty() {
        alt.iter()
            .filter_map(|event| match event {
                Event::Text(text) | Event::Code(text) => Some(text.as_ref()),
                _ => None,
            })
            .collect()
    } else {
        title.to_string()
    };
    let caption = caption.trim();
    if !caption.is_empty() {
        out.push_str("<figcaption>");
        out.push_str(&escape_html(caption));
        out.push_str("</figcaption>");
    }
    out.push_str("</figure>\n");
}

/// Gives every heading an `id` (its own `{#id}` or one made from its text,
/// unique in the post) and a `#` link to itself, so sections can be linked.
fn add_heading_anchors(events: &mut Vec<Event>) {
    let mut taken: Vec<String> = Vec::new();
    let mut i = 0;
    while i < events.len() {
        if let Event::Start(Tag::Heading { id, .. }) = &events[i] {
            let text: String = events[i + 1..]
                .iter()
                .take_while(|event| !matches!(event, Event::End(TagEnd::Heading(_))))
                .filter_map(|event| match event {
                    Event::Text(text) | Event::Code(text) => Some(text.as_ref()),
                    _ => None,
                })
                .collect();
            let base = match id {
                Some(id) => id.to_string(),
                None => slugify(&text),
            };
            let mut unique = if base.is_empty() {
                "section".to_string()
            } else {
                base.clone()
            };
            let mut n = 1;
            while taken.contains(&unique) {
                n += 1;
                unique = format!("{base}-{n}");
            }
            // A link a keyboard can reach, so it says what it is.
            let anchor = format!(
                "<a class=\"anchor\" href=\"#{}\" aria-label=\"Link to the section “{}”\">#</a>",
                escape_html(&unique),
                escape_html(text.trim())
            );
            if let Event::Start(Tag::Heading { id, .. }) = &mut events[i] {
                *id = Some(CowStr::from(unique.clone()));
            }
            taken.push(unique);
            // After the text, so the hidden `#` never shifts the heading.
            let end = events[i..]
                .iter()
                .position(|event| matches!(event, Event::End(TagEnd::Heading(_))))
                .map_or(events.len(), |at| i + at);
            events.insert(end, Event::InlineHtml(CowStr::from(anchor)));
            i = end;
        }
        i += 1;
    }
}

/// `Why "ghosts"?` → `why-ghosts`.
fn slugify(text: &str) -> String {
    let mut slug = String::with_capacity(text.len());
    for c in text.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() {
            slug.push(c);
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    slug.trim_end_matches('-').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn markers(html: &str) -> Vec<u32> {
        html.match_indices("data-block=\"")
            .map(|(i, m)| {
                let rest = &html[i + m.len()..];
                rest[..rest.find('"').expect("closing quote")]
                    .parse()
                    .expect("number")
            })
            .collect()
    }

    #[test]
    fn every_top_level_block_is_marked_in_order() {
        let cases: &[(&str, u32, &[&str])] = &[
            ("one paragraph", 1, &["<p data-block=\"0\">"]),
            (
                "# Title\n\ntext",
                2,
                &["<h1 data-block=\"0\" id=\"title\">", "<p data-block=\"1\">"],
            ),
            ("- a\n- b\n\n  nested\n", 1, &["<ul data-block=\"0\">"]),
            (
                "```rust\nfn main() {}\n```\n",
                1,
                &["<pre data-block=\"0\" tabindex=\"0\">"],
            ),
            (
                "> quoted\n>\n> twice\n",
                1,
                &["<blockquote data-block=\"0\">"],
            ),
            ("a\n\n---\n\nb", 3, &["<hr data-block=\"1\""]),
            (
                "|a|b|\n|-|-|\n|1|2|\n",
                1,
                &["<table data-block=\"0\" tabindex=\"0\">"],
            ),
            (
                "- [x] done\n- [ ] not yet\n",
                1,
                &["<ul data-block=\"0\">", "checkbox"],
            ),
            ("~~old~~ new", 1, &["<del>old</del>"]),
            (
                "<!-- hidden -->\n\ntext",
                1,
                &["<!-- hidden -->", "<p data-block=\"0\">"],
            ),
            (
                "<div class=\"x\">raw</div>\n",
                1,
                &["<div data-block=\"0\" class=\"x\">"],
            ),
            ("text[^1]\n\n[^1]: note\n", 2, &["footnote-definition"]),
        ];
        for (markdown, blocks, wanted) in cases {
            let rendered = render_markdown(markdown);
            assert_eq!(rendered.blocks, *blocks, "{markdown:?} → {}", rendered.html);
            assert_eq!(
                markers(&rendered.html),
                (0..*blocks).collect::<Vec<_>>(),
                "{}",
                rendered.html
            );
            for want in *wanted {
                assert!(
                    rendered.html.contains(want),
                    "{markdown:?} → {} lacks {want}",
                    rendered.html
                );
            }
        }
    }

    #[test]
    fn nested_blocks_are_not_counted() {
        let rendered = render_markdown("> para one\n>\n> para two\n\n- item\n\n  more\n");
        assert_eq!(rendered.blocks, 2, "{}", rendered.html);
    }

    #[test]
    fn a_lone_image_becomes_a_captioned_figure() {
        let rendered =
            render_markdown("![A ghost](/web/ghost.svg \"Two readers, one paragraph\")\n");
        assert_eq!(rendered.blocks, 1);
        assert!(rendered
            .html
            .starts_with("<figure data-block=\"0\"><img loading=\"lazy\" src=\"/web/ghost.svg\""));
        assert!(rendered
            .html
            .contains("<figcaption>Two readers, one paragraph</figcaption>"));
        let untitled = render_markdown("![Alt & <b>](/a.png)\n");
        assert!(
            untitled.html.contains("<figcaption>Alt &amp;</figcaption>"),
            "{}",
            untitled.html
        );
    }

    #[test]
    fn headings_get_unique_linkable_ids() {
        let rendered = render_markdown("## Why ghosts?\n\n## Why ghosts?\n\n## Custom {#mine}\n");
        assert!(rendered.html.contains("id=\"why-ghosts\""));
        assert!(rendered.html.contains("id=\"why-ghosts-2\""));
        assert!(rendered.html.contains("id=\"mine\""));
        assert!(rendered.html.contains(
            "Why ghosts?<a class=\"anchor\" href=\"#why-ghosts\" aria-label=\"Link to the section “Why ghosts?”\">#</a></h2>"
        ));
    }

    #[test]
    fn counts_words_of_prose_and_code() {
        assert_eq!(render_markdown("one two *three*\n\n`four five`").words, 5);
    }

    #[test]
    fn raw_html_is_passed_through_but_text_blocks_are_wrapped() {
        let mut block = String::from("plain text\n");
        mark_block(&mut block, 4);
        assert_eq!(block, "<div data-block=\"4\">plain text\n</div>\n");
    }
}
