//! Risk levels with their reasons, and the policy of `pare.toml`.
//!
//! Risk: the action's base level, raised one level for production-tagged
//! resources, and at least high for anything irreversible. Policy: protected
//! tags and the approval threshold decide whether a change is blocked.

use crate::config::{ALWAYS_PROTECTED, Config};
use crate::executor::Facts;
use crate::plan::Approval;
use crate::vocabulary::{Risk, Step, Tags, words::clean};

/// A change's risk and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    pub risk: Risk,
    pub reasons: Vec<String>,
    pub reversible: bool,
}

/// The production tag on `tags`, as `key=value`, if any.
pub fn production_tag(tags: &Tags) -> Option<String> {
    tags.iter()
        .find(|(k, v)| {
            matches!(k.to_ascii_lowercase().as_str(), "env" | "environment")
                && matches!(v.to_ascii_lowercase().as_str(), "prod" | "production")
        })
        .map(|(k, v)| format!("{k}={v}"))
}

/// Assesses a change from its facts, steps and the tags of its resource.
pub fn assess(facts: &Facts, steps: &[Step], tags: Option<&Tags>) -> Assessment {
    let mut risk = facts.base_risk;
    let mut reasons = facts.reasons.clone();
    if let Some(tag) = tags.and_then(production_tag) {
        let raised = risk.raised();
        if raised != risk {
            reasons.push(format!(
                "tagged {tag}: raised from {} to {}",
                risk.as_str(),
                raised.as_str()
            ));
        } else {
            reasons.push(format!("tagged {tag}"));
        }
        risk = raised;
    }
    let irreversible: Vec<&str> = steps
        .iter()
        .filter_map(|s| match &s.inverse {
            crate::provider::Inverse::Irreversible { why } => Some(why.as_str()),
            _ => None,
        })
        .collect();
    if let Some(why) = irreversible.first() {
        reasons.push(format!("irreversible: {why}"));
        if risk < Risk::High {
            risk = Risk::High;
        }
    }
    Assessment {
        risk,
        reasons,
        reversible: irreversible.is_empty(),
    }
}

/// The protected tag (as pare.toml names it) that `tags` carry, if any.
/// Keys and values match ignoring case and surrounding spaces, so
/// `PARE:PROTECT=True ` protects as `pare:protect=true` does: a near miss
/// never silently unprotects a resource (protecting too much is safe).
pub fn protected_by<'a>(
    tags: &Tags,
    protected: &'a [(String, String)],
) -> Option<&'a (String, String)> {
    protected.iter().find(|(k, v)| {
        tags.iter().any(|(tk, tv)| {
            tk.trim().eq_ignore_ascii_case(k.trim()) && tv.trim().eq_ignore_ascii_case(v.trim())
        })
    })
}

/// A resource a change touches, with its tags, for the protection check.
pub struct Touched<'a> {
    /// "volume vol-0a1b… (data)": how the reason names it.
    pub label: String,
    /// How the change touches it: "detaches", "re-associates", … (`None`
    /// for the recommendation's own resource).
    pub how: Option<String>,
    pub tags: &'a Tags,
}

/// Why policy blocks a change, if it does: each reason with what to do.
/// `touched` lists the recommendation's own resource and everything else
/// its steps (or their undos) touch: a change that would touch a protected
/// resource in any way is blocked, naming it.
pub fn policy_blocks(
    rec_id: &str,
    risk: Risk,
    touched: &[Touched<'_>],
    config: &Config,
    approvals: &[Approval],
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let always = [(
        ALWAYS_PROTECTED.0.to_string(),
        ALWAYS_PROTECTED.1.to_string(),
    )];
    for t in touched {
        let found = match protected_by(t.tags, &always) {
            Some(p) => Some((p, ("pare always protects", "always protected by pare"))),
            None => protected_by(t.tags, &config.protected_tags)
                .map(|p| (p, ("pare.toml protects", "protected by pare.toml"))),
        };
        if let Some(((k, v), (protects, protected))) = found {
            let (tk, have) = t
                .tags
                .iter()
                .find(|(tk, _)| tk.trim().eq_ignore_ascii_case(k.trim()))
                .map_or((k.as_str(), ""), |(a, b)| (a.as_str(), b.as_str()));
            let (k, have, v) = (clean(tk), clean(have), clean(v));
            match &t.how {
                None => out.push((
                    format!("the resource is tagged {k}={have}, which {protects} ({k}={v})"),
                    format!("remove the tag on purpose, or take `{rec_id}` out of the plan"),
                )),
                Some(how) => out.push((
                    format!(
                        "it {how} {}, which is tagged {k}={have} and {protected} ({k}={v})",
                        t.label
                    ),
                    format!(
                        "remove the tag from {} on purpose, or take `{rec_id}` out of the plan",
                        t.label
                    ),
                )),
            }
        }
    }
    if let Some(threshold) = config.require_approval_at
        && risk >= threshold
        && !approvals.iter().any(|a| a.covers(rec_id))
    {
        out.push((
            format!("{} risk needs an approval (require_approval_at = \"{}\")", risk.as_str(), threshold.as_str()),
            format!("add an approval to the plan: `approvals: [{{ by: you@example.com, covers: [{rec_id}], reason: \"…\" }}]`"),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::Savings;
    use crate::vocabulary::{Inverse, Op, Ref};

    fn facts(base: Risk) -> Facts {
        Facts {
            base_risk: base,
            reasons: vec!["base".into()],
            savings: Savings::Usd(1.0),
            replaced_by_step: None,
        }
    }

    fn step(inverse: Inverse) -> Step {
        Step {
            op: Op::StartInstance {
                instance: Ref::id("i-0a1b2c3d"),
            },
            inverse,
        }
    }

    #[test]
    fn production_raises_one_level() {
        let tags = Tags::from([("Environment".into(), "Production".into())]);
        let a = assess(&facts(Risk::Medium), &[], Some(&tags));
        assert_eq!(a.risk, Risk::High);
        assert!(
            a.reasons
                .iter()
                .any(|r| r.contains("tagged Environment=Production"))
        );
        let crit = assess(&facts(Risk::Critical), &[], Some(&tags));
        assert_eq!(crit.risk, Risk::Critical);
    }

    #[test]
    fn irreversible_is_at_least_high() {
        let a = assess(
            &facts(Risk::Low),
            &[step(Inverse::Irreversible { why: "gone".into() })],
            None,
        );
        assert_eq!((a.risk, a.reversible), (Risk::High, false));
        let b = assess(
            &facts(Risk::Low),
            &[step(Inverse::Nothing { why: "kept".into() })],
            None,
        );
        assert_eq!((b.risk, b.reversible), (Risk::Low, true));
    }

    #[test]
    fn policy() {
        let config = Config::default();
        let protected = Tags::from([("pare:protect".into(), "true".into())]);
        fn own(tags: &Tags) -> Touched<'_> {
            Touched {
                label: "instance i-0a1b2c3d".into(),
                how: None,
                tags,
            }
        }
        assert_eq!(
            policy_blocks("a", Risk::Low, &[own(&protected)], &config, &[]).len(),
            1
        );
        // Near misses of the value still protect; other keys do not.
        for value in ["True", "true ", " TRUE"] {
            let t = Tags::from([("pare:protect".into(), value.into())]);
            assert_eq!(
                policy_blocks("a", Risk::Low, &[own(&t)], &config, &[]).len(),
                1,
                "{value}"
            );
        }
        let cased = Tags::from([(" Pare:Protect".into(), "true".into())]);
        assert_eq!(
            policy_blocks("a", Risk::Low, &[own(&cased)], &config, &[]).len(),
            1
        );
        let other = Tags::from([("pare:protected".into(), "true".into())]);
        assert!(policy_blocks("a", Risk::Low, &[own(&other)], &config, &[]).is_empty());
        // What a change moves is protected too.
        let moved = Touched {
            label: "volume vol-0a1b2c3d".into(),
            how: Some("detaches".into()),
            tags: &protected,
        };
        let blocks = policy_blocks("a", Risk::Low, &[moved], &config, &[]);
        assert!(
            blocks[0].0.contains("detaches volume vol-0a1b2c3d"),
            "{blocks:?}"
        );
        assert_eq!(policy_blocks("a", Risk::High, &[], &config, &[]).len(), 1);
        let ok = Approval {
            by: "x".into(),
            covers: vec!["a".into()],
            reason: None,
        };
        assert!(policy_blocks("a", Risk::Critical, &[], &config, &[ok]).is_empty());
        let never = Config {
            require_approval_at: None,
            ..Config::default()
        };
        assert!(policy_blocks("a", Risk::Critical, &[], &never, &[]).is_empty());
    }

    #[test]
    fn pare_protect_always_protects_whatever_pare_toml_lists() {
        let protected = Tags::from([("PARE:protect".into(), "True".into())]);
        let prod = Tags::from([("env".into(), "prod".into())]);
        let own = |tags| Touched {
            label: "instance i-0a1b2c3d".into(),
            how: None,
            tags,
        };
        let config = |tags: &[(&str, &str)]| Config {
            require_approval_at: None,
            protected_tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Config::default()
        };
        for listed in [&[][..], &[("env", "prod")][..]] {
            let blocks = policy_blocks("a", Risk::Low, &[own(&protected)], &config(listed), &[]);
            assert_eq!(blocks.len(), 1, "{listed:?}");
            assert!(
                blocks[0]
                    .0
                    .contains("tagged PARE:protect=True, which pare always protects"),
                "{blocks:?}"
            );
        }
        // What pare.toml lists protects too, and says so.
        let blocks = policy_blocks(
            "a",
            Risk::Low,
            &[own(&prod)],
            &config(&[("env", "prod")]),
            &[],
        );
        assert!(
            blocks[0].0.contains("which pare.toml protects (env=prod)"),
            "{blocks:?}"
        );
        assert!(policy_blocks("a", Risk::Low, &[own(&prod)], &config(&[]), &[]).is_empty());
    }
}
