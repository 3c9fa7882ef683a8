//! Putting things into words for people, safely: counts that agree in
//! number, money, and text from outside pare (plan files, tags, cloud
//! errors) made harmless to print on a terminal.

use std::borrow::Cow;
use std::fmt::Write;

/// "1 wave", "2 waves".
pub fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else if noun.ends_with(['s', 'x']) || noun.ends_with("sh") || noun.ends_with("ch") {
        format!("{n} {noun}es")
    } else {
        format!("{n} {noun}s")
    }
}

/// "Saves …" from "saves …".
pub fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map_or_else(String::new, |f| f.to_uppercase().chain(c).collect())
}

/// `$1,234.56` (`-$3.50` for a negative amount).
pub fn money(x: f64) -> String {
    let neg = x < 0.0;
    let cents = (x.abs() * 100.0).round() as u64;
    let (whole, frac) = (cents / 100, cents % 100);
    let digits = whole.to_string();
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!(
        "{}${grouped}.{frac:02}",
        if neg && cents > 0 { "-" } else { "" }
    )
}

/// "saves $3.00/month", or "costs $3.00/month more" when negative: a
/// negative saving is never printed as "saves -$3.00".
pub fn monthly_savings(x: f64) -> String {
    if x < 0.0 && money(x).starts_with('-') {
        format!("costs {}/month more", money(-x))
    } else {
        format!("saves {}/month", money(x))
    }
}

/// Characters that move the cursor, erase, recolour, or reorder or hide
/// the text around them: C0 and C1 controls, DEL, the bidirectional
/// overrides and isolates, and zero-width characters.
fn hostile(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}'
                | '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{2069}'
                | '\u{feff}'
        )
}

/// `s` made safe to print inside a line: every hostile character (see
/// above), newlines and tabs included, is shown as an escape (`\u{1b}`),
/// so text from a plan file, a tag or a cloud error can neither forge a
/// line nor talk to the terminal.
pub fn clean(s: &str) -> Cow<'_, str> {
    if !s.chars().any(hostile) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if hostile(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// The colours and weights pare (and its error renderer) prints, as SGR
/// parameters; any other escape sequence (conceal, cursor moves, titles)
/// is shown escaped, even on a colour terminal.
fn allowed_sgr(params: &str) -> bool {
    let nums: Option<Vec<u8>> = params
        .split(';')
        .map(|p| {
            if p.is_empty() {
                Some(0)
            } else {
                p.parse().ok()
            }
        })
        .collect();
    let Some(nums) = nums else {
        return false;
    };
    match nums.as_slice() {
        // 256-colour and true-colour foregrounds and backgrounds.
        [38 | 48, 5, _] | [38 | 48, 2, _, _, _] => true,
        simple => simple
            .iter()
            .all(|n| matches!(n, 0..=4 | 22..=24 | 30..=37 | 39 | 40..=47 | 49 | 90..=97)),
    }
}

/// The last line of defence for whole blocks of output: keeps newlines,
/// keeps the colour sequences pare draws (only when `color`), and escapes
/// every other hostile character. Fields should already have been
/// [`clean`]ed where they were put into the text.
pub fn terminal_safe(s: &str, color: bool) -> Cow<'_, str> {
    let needs = s.chars().any(|c| c != '\n' && hostile(c));
    if !needs {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    let mut rest = s;
    while let Some(c) = rest.chars().next() {
        if c == '\x1b' && color {
            // ESC [ params m, with params digits and ';'.
            let tail = &rest[1..];
            if let Some(body) = tail.strip_prefix('[') {
                let end = body
                    .find(|ch: char| !(ch.is_ascii_digit() || ch == ';'))
                    .unwrap_or(body.len());
                if body[end..].starts_with('m') && allowed_sgr(&body[..end]) {
                    let len = 2 + end + 1;
                    out.push_str(&rest[..len]);
                    rest = &rest[len..];
                    continue;
                }
            }
        }
        match c {
            '\n' => out.push('\n'),
            c if hostile(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
        rest = &rest[c.len_utf8()..];
    }
    Cow::Owned(out)
}

/// JSON text made safe to print: hostile characters (which can only stand
/// inside its strings) written as `\uXXXX` escapes, so the text is still
/// the same JSON, and no terminal or log viewer acts on them.
pub fn json_safe(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| c != '\n' && hostile(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c != '\n' && hostile(c) {
            let mut buf = [0u16; 2];
            for unit in c.encode_utf16(&mut buf) {
                let _ = write!(out, "\\u{unit:04x}");
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `s` with every hostile character except newlines replaced by `?`
/// characters of the same byte length, so byte offsets into it stay valid:
/// what a located error shows of a file's lines.
pub fn same_length_printable(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| c != '\n' && hostile(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c != '\n' && hostile(c) {
            for _ in 0..c.len_utf8() {
                out.push('?');
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// ` --state LOCATION` when the state was named on the command line or in
/// the environment (not by pare.toml, nor the default `.pare`), so that
/// the commands pare suggests act on the same state when pasted; else "".
pub fn state_flag() -> &'static str {
    STATE_FLAG.get().map_or("", String::as_str)
}

/// Sets what [`state_flag`] says, once per process (the command line's
/// settings).
pub fn set_state_flag(location: Option<String>) {
    let flag = location.map_or(String::new(), |l| format!(" --state {}", clean(&l)));
    let _ = STATE_FLAG.set(flag);
}

static STATE_FLAG: std::sync::OnceLock<String> = std::sync::OnceLock::new();

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_and_savings() {
        assert_eq!(money(1234.567), "$1,234.57");
        assert_eq!(money(0.0), "$0.00");
        assert_eq!(money(-3.5), "-$3.50");
        assert_eq!(money(-0.001), "$0.00");
        assert_eq!(money(1_000_000.0), "$1,000,000.00");
        assert_eq!(monthly_savings(-2609.99), "costs $2,609.99/month more");
        assert_eq!(monthly_savings(12.0), "saves $12.00/month");
        assert_eq!(monthly_savings(-0.001), "saves $0.00/month");
        assert_eq!(plural(1, "step"), "1 step");
        assert_eq!(plural(0, "step"), "0 steps");
    }

    #[test]
    fn hostile_text_is_escaped() {
        assert_eq!(clean("web-1"), "web-1");
        assert_eq!(clean("a\x1b[2Kb"), "a\\u{1b}[2Kb");
        assert_eq!(clean("x\ny"), "x\\ny");
        assert_eq!(clean("rtl\u{202e}txt"), "rtl\\u{202e}txt");
        assert_eq!(clean("\u{9b}31m"), "\\u{9b}31m");
        // Whole blocks keep their lines and, on a colour terminal, pare's colours.
        assert_eq!(terminal_safe("a\nb", false), "a\nb");
        assert_eq!(
            terminal_safe("\x1b[31mred\x1b[0m", true),
            "\x1b[31mred\x1b[0m"
        );
        assert_eq!(
            terminal_safe("\x1b[31mred\x1b[0m", false),
            "\\u{1b}[31mred\\u{1b}[0m"
        );
        assert_eq!(terminal_safe("\x1b[8mhidden", true), "\\u{1b}[8mhidden");
        assert_eq!(
            terminal_safe("\x1b]0;title\x07", true),
            "\\u{1b}]0;title\\u{7}"
        );
        let s = "ok\x1bé\u{202e}!";
        assert_eq!(same_length_printable(s).len(), s.len());
        assert_eq!(same_length_printable(s), "ok?é???!");
        let json =
            serde_json::to_string(&serde_json::json!({"n": "q\u{7f}\u{202e}\u{1b}"})).unwrap();
        let safe = json_safe(&json);
        assert!(
            !safe.contains('\u{7f}') && !safe.contains('\u{202e}'),
            "{safe}"
        );
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back["n"], "q\u{7f}\u{202e}\u{1b}", "the same JSON");
    }
}
