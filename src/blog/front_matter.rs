//! The small header of every post, between two `---` lines, validated once
//! here so the rest of the server never sees a post without a title or date.

use std::fmt;

/// What a post says about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrontMatter {
    pub title: String,
    pub date: Date,
    /// One or two sentences for the index; optional.
    pub summary: Option<String>,
    /// Drafts are left out of the index but served at their URL, so an author
    /// can share a preview link.
    pub draft: bool,
    /// `tags: rust, live presence`: each lowercased, spaces as `-`, so it
    /// can name its page (`/tags/live-presence`). In the order given.
    pub tags: Vec<String>,
}

/// A calendar date, `YYYY-MM-DD`. Posts need no time of day or zone, so this
/// avoids a date-time dependency.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Date {
    pub year: u16,
    pub month: u8,
    pub day: u8,
}

/// Why a post's front matter was refused; each says how to fix it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrontMatterError {
    Missing,
    /// No closing `---`; `before` is the line that looks like the body's
    /// first, where the `---` belongs, if one does.
    Unterminated {
        before: Option<(usize, String)>,
    },
    BadLine {
        line: usize,
        text: String,
    },
    UnknownKey(String),
    DuplicateKey(String),
    MissingKey(&'static str),
    EmptyValue(&'static str),
    BadDate(String),
    BadDraft(String),
    BadTag(String),
}

impl fmt::Display for FrontMatterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use FrontMatterError::*;
        match self {
            Missing => write!(
                f,
                "no front matter: start the file with a line `---`, then `title: ...` and `date: YYYY-MM-DD`, then `---`"
            ),
            Unterminated { before: Some((line, text)) } => write!(
                f,
                "front matter never ends: add a line `---` after the last key, before line {line} `{}`",
                shorten(text)
            ),
            Unterminated { before: None } => {
                write!(f, "front matter never ends: add a line `---` after the last key")
            }
            BadLine { line, text } => write!(
                f,
                "front matter line {line} `{text}` is not `key: value`; write it as e.g. `title: My post`"
            ),
            UnknownKey(key) => write!(
                f,
                "unknown front matter key `{key}`; the keys are title, date, summary, draft and tags"
            ),
            DuplicateKey(key) => write!(f, "front matter key `{key}` appears twice; keep one"),
            MissingKey("date") => write!(
                f,
                "front matter has no `date`; add a line `date: ...` written YYYY-MM-DD, e.g. `date: 2026-03-14`"
            ),
            MissingKey(key) => write!(f, "front matter has no `{key}`; add a line `{key}: ...`"),
            EmptyValue(key) => write!(f, "front matter `{key}` is empty; give it a value"),
            BadDate(text) => write!(
                f,
                "front matter date `{text}` is not a real date written YYYY-MM-DD, e.g. `date: 2026-03-14`"
            ),
            BadDraft(text) => write!(f, "front matter draft `{text}` must be `true` or `false`"),
            BadTag(text) => write!(
                f,
                "front matter tag `{text}` may hold only letters, digits, spaces and `-`; separate tags with commas, e.g. `tags: rust, live presence`"
            ),
        }
    }
}

impl std::error::Error for FrontMatterError {}

/// A line as an error quotes it: at most 40 characters.
fn shorten(text: &str) -> String {
    match text.char_indices().nth(40) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

impl FrontMatter {
    /// Splits a post's text into its front matter and its Markdown body.
    pub fn parse(text: &str) -> Result<(FrontMatter, &str), FrontMatterError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut lines = text.split_inclusive('\n');
        match lines.next() {
            Some(first) if first.trim_end() == "---" => {}
            _ => return Err(FrontMatterError::Missing),
        }
        let mut consumed = text.len() - lines.clone().map(str::len).sum::<usize>();
        let (mut title, mut date, mut summary, mut draft, mut tags) =
            (None, None, None, None, None);
        let mut closed = false;
        // Without a closing `---` anywhere, the first line that is not a
        // key is where the body starts: the `---` is missing there.
        let has_closing = lines.clone().any(|line| line.trim() == "---");
        let unterminated = |number: usize, line: &str| FrontMatterError::Unterminated {
            before: Some((number + 2, line.to_string())),
        };
        for (number, raw) in lines.enumerate() {
            consumed += raw.len();
            let line = raw.trim();
            if line == "---" {
                closed = true;
                break;
            }
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((key, value)) = line.split_once(':') else {
                if !has_closing {
                    return Err(unterminated(number, line));
                }
                return Err(FrontMatterError::BadLine {
                    line: number + 2,
                    text: line.to_string(),
                });
            };
            let key = key.trim();
            let value = unquote(value.trim());
            let slot = match key {
                "title" => &mut title,
                "date" => &mut date,
                "summary" => &mut summary,
                "draft" => &mut draft,
                "tags" => &mut tags,
                _ if !has_closing => return Err(unterminated(number, line)),
                _ => return Err(FrontMatterError::UnknownKey(key.to_string())),
            };
            if slot.replace(value.to_string()).is_some() {
                return Err(FrontMatterError::DuplicateKey(key.to_string()));
            }
        }
        if !closed {
            return Err(FrontMatterError::Unterminated { before: None });
        }
        let title = title.ok_or(FrontMatterError::MissingKey("title"))?;
        // A quoted title keeps its spaces, but one of spaces only is none.
        if title.trim().is_empty() {
            return Err(FrontMatterError::EmptyValue("title"));
        }
        let date = date.ok_or(FrontMatterError::MissingKey("date"))?;
        let date = Date::parse(&date).ok_or(FrontMatterError::BadDate(date))?;
        let draft = match draft.as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => return Err(FrontMatterError::BadDraft(other.to_string())),
        };
        let summary = summary.filter(|s| !s.is_empty());
        let tags = parse_tags(tags.as_deref().unwrap_or(""))?;
        Ok((
            FrontMatter {
                title,
                date,
                summary,
                draft,
                tags,
            },
            &text[consumed..],
        ))
    }
}

/// `rust, Live Presence` → `["rust", "live-presence"]`; duplicates once.
fn parse_tags(text: &str) -> Result<Vec<String>, FrontMatterError> {
    let mut tags: Vec<String> = Vec::new();
    for raw in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let tag = raw
            .to_lowercase()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join("-");
        let valid = tag.len() <= 50
            && tag
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !valid {
            return Err(FrontMatterError::BadTag(raw.to_string()));
        }
        if !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    Ok(tags)
}

/// Strips one pair of matching quotes, so `title: "A: B"` can hold a colon.
fn unquote(value: &str) -> &str {
    for quote in ['"', '\''] {
        if let Some(inner) = value
            .strip_prefix(quote)
            .and_then(|v| v.strip_suffix(quote))
        {
            return inner;
        }
    }
    value
}

impl Date {
    /// Parses `YYYY-MM-DD`, refusing dates that do not exist (`2026-02-30`).
    pub fn parse(text: &str) -> Option<Date> {
        let bytes = text.as_bytes();
        if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
            return None;
        }
        let number = |range: std::ops::Range<usize>| -> Option<u16> {
            let part = &text[range];
            part.bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| part.parse().ok())?
        };
        let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        let days_in_month = match month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if leap => 29,
            2 => 28,
            _ => return None,
        };
        if year == 0 || day == 0 || day > days_in_month {
            return None;
        }
        Some(Date {
            year,
            month: month as u8,
            day: day as u8,
        })
    }

    /// `27 November 2026`, for people.
    pub fn human(&self) -> String {
        const MONTHS: [&str; 12] = [
            "January",
            "February",
            "March",
            "April",
            "May",
            "June",
            "July",
            "August",
            "September",
            "October",
            "November",
            "December",
        ];
        let month = MONTHS[usize::from(self.month.clamp(1, 12)) - 1];
        format!("{} {} {}", self.day, month, self.year)
    }
}

/// `2026-11-27`, for `<time datetime>` and feeds.
impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_full_front_matter_and_returns_the_body() {
        let text = "---\ntitle: \"Ghosts: a story\"\ndate: 2024-02-29\nsummary: Short.\ndraft: true\n---\n# Body\n";
        let (meta, body) = FrontMatter::parse(text).expect("valid");
        assert_eq!(meta.title, "Ghosts: a story");
        assert_eq!(
            meta.date,
            Date {
                year: 2024,
                month: 2,
                day: 29
            }
        );
        assert_eq!(meta.summary.as_deref(), Some("Short."));
        assert!(meta.draft);
        assert_eq!(body, "# Body\n");
    }

    #[test]
    fn refuses_each_kind_of_bad_front_matter() {
        use FrontMatterError::*;
        let cases: &[(&str, FrontMatterError)] = &[
            ("# just markdown\n", Missing),
            (
                "---\ntitle: a\ndate: 2020-01-01\n",
                Unterminated { before: None },
            ),
            (
                "---\ntitle: a\ndate: 2020-01-01\n\nThe text: it begins.\n",
                Unterminated {
                    before: Some((5, "The text: it begins.".into())),
                },
            ),
            (
                "---\ntitle: a\ndate: 2020-01-01\n# A heading\nSome text\n",
                Unterminated {
                    before: Some((5, "Some text".into())),
                },
            ),
            (
                "---\ntitle a\n---\n",
                BadLine {
                    line: 2,
                    text: "title a".into(),
                },
            ),
            ("---\ntitel: a\n---\n", UnknownKey("titel".into())),
            (
                "---\ntitle: a\ntitle: b\n---\n",
                DuplicateKey("title".into()),
            ),
            ("---\ndate: 2020-01-01\n---\n", MissingKey("title")),
            (
                "---\ntitle: \"\"\ndate: 2020-01-01\n---\n",
                EmptyValue("title"),
            ),
            (
                "---\ntitle: \"  \"\ndate: 2020-01-01\n---\n",
                EmptyValue("title"),
            ),
            ("---\ntitle: a\n---\n", MissingKey("date")),
            (
                "---\ntitle: a\ndate: 2023-02-29\n---\n",
                BadDate("2023-02-29".into()),
            ),
            (
                "---\ntitle: a\ndate: 2023-13-01\n---\n",
                BadDate("2023-13-01".into()),
            ),
            (
                "---\ntitle: a\ndate: 20231-01-01\n---\n",
                BadDate("20231-01-01".into()),
            ),
            (
                "---\ntitle: a\ndate: 2023-1-01\n---\n",
                BadDate("2023-1-01".into()),
            ),
            (
                "---\ntitle: a\ndate: 2023-01-01\ndraft: yes\n---\n",
                BadDraft("yes".into()),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(
                FrontMatter::parse(text).err().as_ref(),
                Some(want),
                "{text:?}"
            );
        }
    }

    #[test]
    fn a_missing_fence_or_date_is_told_as_what_to_write() {
        let post = "---\ntitle: a\ndate: 2020-01-01\n\nWhere readers read, and why.\n";
        let error = FrontMatter::parse(post).expect_err("no closing fence");
        assert_eq!(
            error.to_string(),
            "front matter never ends: add a line `---` after the last key, before line 5 `Where readers read, and why.`"
        );
        let error = FrontMatter::parse("---\ntitle: a\n---\n").expect_err("no date");
        assert_eq!(
            error.to_string(),
            "front matter has no `date`; add a line `date: ...` written YYYY-MM-DD, e.g. `date: 2026-03-14`"
        );
    }

    #[test]
    fn dates_read_well_for_people_and_machines() {
        let date = Date::parse("2026-11-07").expect("valid");
        assert_eq!(date.human(), "7 November 2026");
        assert_eq!(date.to_string(), "2026-11-07");
    }
}
