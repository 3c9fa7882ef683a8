//! The API's bearer tokens: a JSON file of names, scopes and the sha256 of
//! each token (never the token). `pare serve token add` prints a new token
//! once; a request's token is hashed and compared with every stored hash in
//! constant time.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::Path;

/// What a token may do.
pub const SCOPES: [&str; 4] = ["read", "plan", "apply", "rollback"];

/// The most a tokens file may hold.
const LIMIT: u64 = 1 << 20;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Token {
    pub name: String,
    /// Hex sha256 of the token.
    pub sha256: String,
    pub scopes: Vec<String>,
    pub created: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Tokens {
    pub tokens: Vec<Token>,
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Reads a tokens file; every entry is checked (a name, known scopes, a
/// 64-hex-digit hash), so a hand-edited file cannot grant what it seems not to.
pub fn load(path: &Path) -> Result<Tokens, String> {
    let shown = crate::vocabulary::words::clean(&path.display().to_string()).into_owned();
    let text = crate::durable::read_given(path, LIMIT, "a tokens file")
        .map_err(|e| format!("cannot read the tokens file {shown}: {e}"))?;
    let tokens: Tokens = serde_json::from_str(&text).map_err(|e| {
        format!(
            "{shown}:{}:{}: not a tokens file ({}); it is written by `pare serve token add`",
            e.line(),
            e.column(),
            crate::diagnostic::json_message(&e)
        )
    })?;
    let mut names = std::collections::BTreeSet::new();
    for t in &tokens.tokens {
        if !valid_name(&t.name) {
            return Err(format!(
                "{shown}: the token name `{}` is not 1 to 64 letters, digits, `-`, `_` or `.`",
                crate::vocabulary::words::clean(&t.name)
            ));
        }
        if !names.insert(t.name.as_str()) {
            return Err(format!("{shown}: the token name {} is given twice", t.name));
        }
        if t.sha256.len() != 64 || !t.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "{shown}: token {} has no sha256 of 64 hex digits",
                t.name
            ));
        }
        if let Some(s) = t.scopes.iter().find(|s| !SCOPES.contains(&s.as_str())) {
            return Err(format!(
                "{shown}: token {} has the scope `{}`, which is not one of {}",
                t.name,
                crate::vocabulary::words::clean(s),
                SCOPES.join(", ")
            ));
        }
    }
    Ok(tokens)
}

/// 32 random bytes, as `pare_` and 64 hex digits.
fn new_token() -> Result<String, String> {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| format!("no randomness for a token (/dev/urandom: {e})"))?;
    Ok(format!("pare_{}", crate::vocabulary::hex(&bytes)))
}

/// The sha256 of a token, as stored.
pub fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Adds a token named `name` with `scopes` to the file at `path` (created,
/// owner-only, when absent) and returns the token, which is stored nowhere.
pub fn add(path: &Path, name: &str, scopes: &[String]) -> Result<String, String> {
    if !valid_name(name) {
        return Err(format!(
            "the token name `{}` is not 1 to 64 letters, digits, `-`, `_` or `.`",
            crate::vocabulary::words::clean(name)
        ));
    }
    let mut scopes: Vec<String> = scopes.iter().map(|s| s.trim().to_string()).collect();
    scopes.sort();
    scopes.dedup();
    if scopes.is_empty() {
        return Err(format!("give at least one scope: {}", SCOPES.join(", ")));
    }
    if let Some(s) = scopes.iter().find(|s| !SCOPES.contains(&s.as_str())) {
        return Err(format!(
            "`{}` is not a scope; the scopes are {}",
            crate::vocabulary::words::clean(s),
            SCOPES.join(", ")
        ));
    }
    let mut file = if path.exists() {
        load(path)?
    } else {
        Tokens::default()
    };
    if file.tokens.iter().any(|t| t.name == name) {
        return Err(format!(
            "a token named {name} exists already; choose another name (or remove it from the file first)"
        ));
    }
    let token = new_token()?;
    file.tokens.push(Token {
        name: name.to_string(),
        sha256: crate::vocabulary::hex(&digest(&token)),
        scopes,
        created: crate::clock::rfc3339(crate::clock::now()),
    });
    let text = serde_json::to_string_pretty(&file).map_err(|e| e.to_string())? + "\n";
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    crate::durable::write_atomic(path, text.as_bytes()).map_err(|e| {
        format!(
            "cannot write {}: {e}",
            crate::vocabulary::words::clean(&path.display().to_string())
        )
    })?;
    Ok(token)
}

/// The token a request presented, if it is one of `tokens`: every stored
/// hash is compared, each in constant time, so the time taken says nothing
/// about which (or how much of one) matched.
pub fn find<'a>(tokens: &'a Tokens, presented: &str) -> Option<&'a Token> {
    let d = digest(presented);
    let mut found = None;
    for t in &tokens.tokens {
        let mut stored = [0u8; 32];
        for (i, b) in stored.iter_mut().enumerate() {
            *b =
                u8::from_str_radix(t.sha256.get(2 * i..2 * i + 2).unwrap_or("00"), 16).unwrap_or(0);
        }
        let diff = stored
            .iter()
            .zip(d.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if diff == 0 && found.is_none() {
            found = Some(t);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_added_is_found_by_itself_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        let t = add(&path, "bot", &["read".into(), "apply".into()]).unwrap();
        assert!(t.starts_with("pare_") && t.len() == 69);
        let file = load(&path).unwrap();
        assert_eq!(find(&file, &t).unwrap().scopes, vec!["apply", "read"]);
        assert!(find(&file, "pare_0000").is_none());
        // Only the hash is stored.
        assert!(!std::fs::read_to_string(&path).unwrap().contains(&t));
        assert!(add(&path, "bot", &["read".into()]).is_err());
        assert!(add(&path, "x y", &["read".into()]).is_err());
        assert!(add(&path, "other", &["admin".into()]).is_err());
    }

    #[test]
    fn a_hand_edited_file_granting_an_unknown_scope_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        std::fs::write(
            &path,
            format!(
                r#"{{"tokens":[{{"name":"a","sha256":"{}","scopes":["root"],"created":"x"}}]}}"#,
                "0".repeat(64)
            ),
        )
        .unwrap();
        assert!(load(&path).unwrap_err().contains("`root`"));
    }
}
