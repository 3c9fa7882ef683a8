//! What a newcomer reads: one summary line per run that history agrees
//! with, every error code documented in one style, usage errors exit 1.

use super::harness::{REVERSIBLE_PLAN, Sandbox, quickstart_account};
use super::root;

/// Every code pare can print, as written in the source.
fn codes_in_source() -> std::collections::BTreeSet<String> {
    const FAMILIES: [&str; 8] = [
        "plan", "config", "apply", "rollback", "saved", "state", "sandbox", "provider",
    ];
    let mut out = std::collections::BTreeSet::new();
    let mut stack = vec![root().join("src")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            if p.extension().is_none_or(|x| x != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&p).unwrap();
            for family in FAMILIES {
                for opener in ["\"", "code("] {
                    let needle = format!("{opener}{family}::");
                    for (at, _) in text.match_indices(&needle) {
                        let rest = &text[at + opener.len()..];
                        let code: String = rest
                            .chars()
                            .take_while(|c| {
                                c.is_ascii_alphanumeric() || matches!(c, ':' | '-' | '_')
                            })
                            .collect();
                        // Paths such as `plan::load` are not codes: a code
                        // is written as a string or inside `code(…)`.
                        let closes = rest[code.len()..].starts_with(['"', ')']);
                        if closes && code.len() > family.len() + 2 {
                            out.insert(code);
                        }
                    }
                }
            }
        }
    }
    out
}

#[test]
fn every_error_code_is_documented_in_one_style() {
    let codes = codes_in_source();
    assert!(codes.len() > 50, "the scan finds the codes: {codes:?}");
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let table: String = readme
        .lines()
        .filter(|l| l.starts_with('|'))
        .collect::<Vec<_>>()
        .join("\n");
    for code in &codes {
        let (family, name) = code.split_once("::").unwrap();
        assert!(
            name.chars().all(|c| c.is_ascii_lowercase() || c == '-')
                && family.chars().all(|c| c.is_ascii_lowercase()),
            "`{code}` is not in the house style (family::kebab-case)"
        );
        assert!(
            table.contains(&format!("`{code}`")),
            "`{code}` is missing from the README's tables of error codes"
        );
    }
}

/// The lines of `err` that sum up run `id`.
fn summaries<'a>(err: &'a str, id: &str) -> Vec<&'a str> {
    err.lines()
        .filter(|l| l.starts_with(&format!("run {id}:")))
        .collect()
}

/// The summary line the run's record gives, as history knows it.
fn recorded(s: &Sandbox, id: &str) -> String {
    let runs = s.history();
    let run = runs
        .iter()
        .find(|r| r["id"] == id)
        .expect("the run is recorded");
    let record: pare::state::RunRecord = serde_json::from_value(run.clone()).unwrap();
    pare::session::apply::summary_line(&record)
}

#[test]
fn each_run_ends_in_one_summary_line_that_history_agrees_with() {
    let s = Sandbox::new(REVERSIBLE_PLAN, &quickstart_account());
    let (code, _, err) = s.run(&["apply", "plan.yaml", "--auto-approve"]);
    assert_eq!(code, 0, "{err}");
    let apply = s.last_run()["id"].as_str().unwrap().to_string();
    assert_eq!(summaries(&err, &apply), [recorded(&s, &apply)], "{err}");

    // A rollback held up by AWS's six-hour rule, then finished later.
    let (code, _, err) = s.run(&["rollback", "--last", "--auto-approve"]);
    assert_eq!(code, 4, "{err}");
    let first = s.last_run()["id"].as_str().unwrap().to_string();
    assert_eq!(summaries(&err, &first), [recorded(&s, &first)], "{err}");
    let (code, _, err) = s.run_at(&["rollback", "--run", &apply, "--auto-approve"], 7);
    assert_eq!(code, 0, "{err}");
    let resumed = s.last_run()["id"].as_str().unwrap().to_string();
    assert_eq!(summaries(&err, &resumed), [recorded(&s, &resumed)], "{err}");
    assert!(
        recorded(&s, &resumed).contains("; 1 step undone"),
        "{}",
        recorded(&s, &resumed)
    );

    // Nothing left: said plainly, exit 0, and no run recorded.
    let runs = s.history().len();
    let (code, _, err) = s.run_at(&["rollback", "--last", "--auto-approve"], 8);
    assert_eq!(code, 0, "{err}");
    assert!(err.starts_with("Nothing to roll back"), "{err}");
    assert!(!err.contains("error"), "{err}");
    assert_eq!(s.history().len(), runs, "an empty rollback records nothing");
}

#[test]
fn a_missing_plan_file_is_worded_once_the_same_way_by_plan_and_apply() {
    let s = Sandbox::new(REVERSIBLE_PLAN, &quickstart_account());
    for cmd in ["plan", "apply"] {
        let (code, _, err) =
            s.run(&[cmd, "missing.yaml", "--auto-approve"][..if cmd == "plan" { 2 } else { 3 }]);
        assert_eq!(code, 1, "{err}");
        assert!(
            err.contains("cannot read plan file missing.yaml: No such file or directory"),
            "{cmd}: {err}"
        );
        assert_eq!(
            err.matches("No such file or directory").count(),
            1,
            "{cmd}: {err}"
        );
    }
}
