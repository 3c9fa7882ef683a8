//! Fuzzing the loader with proptest: arbitrary bytes and mutated valid plans.
//! It must never panic, and must return either a plan or located diagnostics.

use super::*;
use proptest::prelude::*;
use std::path::Path;

const QUICKSTART: &str = include_str!("../../examples/quickstart/plan.yaml");

/// Checks the loader's contract on `text`.
fn holds(text: String) -> Result<(), TestCaseError> {
    let len = text.len();
    let lines = text.lines().count().max(1);
    let (plan, diags) = check_str(Path::new("f.yaml"), "f.yaml", text);
    prop_assert!(
        plan.is_some() || !diags.is_empty(),
        "neither a plan nor a diagnostic"
    );
    for d in &diags {
        prop_assert!(
            d.primary.span.offset <= len,
            "{} points past the end",
            d.code
        );
        let (line, column) = d.line_col();
        prop_assert!(
            line >= 1 && line <= lines + 1 && column >= 1,
            "{}:{} out of the file",
            line,
            column
        );
        prop_assert!(!d.message.is_empty());
        prop_assert!(d.help.is_some(), "{} has no help", d.code);
    }
    Ok(())
}

#[derive(Debug, Clone)]
enum Mutation {
    Delete(usize, usize),
    Insert(usize, String),
    DuplicateLine(usize),
    SwapLines(usize, usize),
    ReplaceToken(usize, String),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let snippet = prop_oneof![
        Just(":".to_string()),
        Just("- ".to_string()),
        Just("\n  ".to_string()),
        Just("{".to_string()),
        Just("]".to_string()),
        Just("\"".to_string()),
        Just("&a ".to_string()),
        Just("*a".to_string()),
        Just("<<: *a\n".to_string()),
        Just("!!binary ".to_string()),
        Just("\t".to_string()),
        Just("~".to_string()),
        "[a-z_]{1,8}: [a-z0-9.-]{0,12}\n",
        "\\PC{0,6}",
    ];
    prop_oneof![
        (any::<usize>(), 1usize..40).prop_map(|(a, n)| Mutation::Delete(a, n)),
        (any::<usize>(), snippet.clone()).prop_map(|(a, s)| Mutation::Insert(a, s)),
        any::<usize>().prop_map(Mutation::DuplicateLine),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
        (
            any::<usize>(),
            prop_oneof![
                Just("2".to_string()),
                Just("-1".to_string()),
                Just("true".to_string()),
                Just("null".to_string()),
                Just("[]".to_string()),
                Just("{}".to_string()),
                Just("i-".to_string()),
                Just("1e999".to_string()),
                Just("99999999999999999999999".to_string()),
                Just("rightsize".to_string())
            ]
        )
            .prop_map(|(a, s)| Mutation::ReplaceToken(a, s)),
    ]
}

fn apply(text: &str, m: &Mutation) -> String {
    let boundary = |i: usize| {
        let mut i = i % (text.len() + 1);
        while !text.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    let mut lines: Vec<&str> = text.lines().collect();
    match m {
        Mutation::Delete(a, n) => {
            let a = boundary(*a);
            let b = boundary((a + n).min(text.len()));
            format!("{}{}", &text[..a], &text[b.max(a)..])
        }
        Mutation::Insert(a, s) => {
            let a = boundary(*a);
            format!("{}{s}{}", &text[..a], &text[a..])
        }
        Mutation::DuplicateLine(i) => {
            let i = i % lines.len();
            lines.insert(i, lines[i]);
            lines.join("\n")
        }
        Mutation::SwapLines(a, b) => {
            let n = lines.len();
            lines.swap(a % n, b % n);
            lines.join("\n")
        }
        Mutation::ReplaceToken(a, s) => {
            // Replace the value after the n-th `: `.
            let spots: Vec<usize> = text.match_indices(": ").map(|(i, _)| i + 2).collect();
            let start = spots[a % spots.len()];
            let end = text[start..]
                .find([',', '}', '\n'])
                .map_or(text.len(), |e| start + e);
            format!("{}{s}{}", &text[..start], &text[end..])
        }
    }
}

proptest! {
    // A pinned seed keeps CI deterministic; set PROPTEST_RNG_SEED to explore others.
    #![proptest_config(ProptestConfig {
        cases: 1000,
        failure_persistence: None,
        rng_seed: std::env::var("PROPTEST_RNG_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .map_or(proptest::test_runner::RngSeed::Fixed(0x9a7e), proptest::test_runner::RngSeed::Fixed),
        ..ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        holds(String::from_utf8_lossy(&bytes).into_owned())?;
    }

    #[test]
    fn yaml_like_text_never_panics(text in "([a-z_]{1,6}: ?[-a-z0-9.\\[\\]{}\"'~&*!|>]{0,8}\n {0,4}-? ?){0,30}") {
        holds(text)?;
    }

    #[test]
    fn mutated_plans_never_panic(ms in proptest::collection::vec(mutation(), 1..5)) {
        let mut text = QUICKSTART.to_string();
        for m in &ms {
            text = apply(&text, m);
        }
        holds(text)?;
    }
}
