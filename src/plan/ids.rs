//! The shapes of cloud identifiers, checked statically before any cloud call.

/// The kinds of identifier a plan names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    Instance,
    Volume,
    Snapshot,
    Address,
}

impl IdKind {
    pub fn prefix(self) -> &'static str {
        match self {
            IdKind::Instance => "i-",
            IdKind::Volume => "vol-",
            IdKind::Snapshot => "snap-",
            IdKind::Address => "eipalloc-",
        }
    }

    pub fn noun(self) -> &'static str {
        match self {
            IdKind::Instance => "an instance id",
            IdKind::Volume => "a volume id",
            IdKind::Snapshot => "a snapshot id",
            IdKind::Address => "an Elastic IP allocation id",
        }
    }

    pub fn example(self) -> &'static str {
        match self {
            IdKind::Instance => "i-0a1b2c3d4e5f60001",
            IdKind::Volume => "vol-0a1b2c3d4e5f60001",
            IdKind::Snapshot => "snap-0a1b2c3d4e5f60001",
            IdKind::Address => "eipalloc-0a1b2c3d",
        }
    }

    const ALL: [IdKind; 4] = [
        IdKind::Instance,
        IdKind::Volume,
        IdKind::Snapshot,
        IdKind::Address,
    ];
}

/// Whether `id` is a well-formed id of `kind`: its prefix, then 8 or 17 lowercase hex digits.
pub fn is_valid(kind: IdKind, id: &str) -> bool {
    id.strip_prefix(kind.prefix()).is_some_and(|hex| {
        (hex.len() == 8 || hex.len() == 17)
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// What `id` looks like instead, when it has another kind's prefix.
pub fn looks_like(id: &str) -> Option<IdKind> {
    IdKind::ALL
        .into_iter()
        .filter(|k| id.starts_with(k.prefix()))
        // `i-` is a prefix of nothing else, but prefer the longest match anyway.
        .max_by_key(|k| k.prefix().len())
}

/// Whether `t` has the shape of an EC2 instance type, `family.size` (`m5.large`, `c7i.metal-24xl`).
pub fn is_instance_type(t: &str) -> bool {
    let Some((family, size)) = t.split_once('.') else {
        return false;
    };
    let word = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-')
            && !s.ends_with('-')
    };
    word(family)
        && word(size)
        && family.as_bytes()[0].is_ascii_lowercase()
        && family.bytes().any(|b| b.is_ascii_digit())
}

/// Whether `z` has the shape of an availability zone (`us-east-1a`).
pub fn is_zone(z: &str) -> bool {
    z.len() > 1 && z.ends_with(|c: char| c.is_ascii_lowercase()) && is_region(&z[..z.len() - 1])
}

/// Whether `r` has the shape of a region (`us-east-1`, `us-gov-west-1`).
pub fn is_region(r: &str) -> bool {
    let parts: Vec<&str> = r.split('-').collect();
    parts.len() >= 3
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1].parse::<u8>().is_ok()
}

/// Whether `id` is a well-formed recommendation id: `[a-z0-9][a-z0-9_-]*`.
pub fn is_recommendation_id(id: &str) -> bool {
    id.bytes()
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// The closest candidate to `word`, if one is close enough to be a likely typo.
pub fn suggest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).clamp(1, 3);
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_ids() {
        assert!(is_valid(IdKind::Instance, "i-0a1b2c3d4e5f60001"));
        assert!(is_valid(IdKind::Instance, "i-0a1b2c3d"));
        assert!(!is_valid(IdKind::Instance, "i-0A1B2C3D"));
        assert!(!is_valid(IdKind::Instance, "i-123"));
        assert!(!is_valid(IdKind::Instance, "vol-0a1b2c3d"));
        assert!(is_valid(IdKind::Address, "eipalloc-0a1b2c3d"));
        assert_eq!(looks_like("vol-123"), Some(IdKind::Volume));
        assert_eq!(looks_like("web-1"), None);
    }

    #[test]
    fn instance_types() {
        for ok in [
            "m5.large",
            "c7i.metal-24xl",
            "u-6tb1.metal",
            "t3.2xlarge",
            "x2iedn.32xlarge",
        ] {
            assert!(is_instance_type(ok), "{ok}");
        }
        for bad in [
            "m5",
            "large",
            "M5.large",
            "m5.",
            ".large",
            "m5.large.x",
            "mfive.large",
        ] {
            assert!(!is_instance_type(bad), "{bad}");
        }
    }

    #[test]
    fn zones_and_regions() {
        assert!(is_zone("us-east-1a"));
        assert!(is_region("us-gov-west-1"));
        assert!(!is_zone("us-east-1"));
        assert!(!is_region("useast1"));
    }

    #[test]
    fn suggestions() {
        assert_eq!(
            suggest("rightsise", ["rightsize", "reserve"]),
            Some("rightsize")
        );
        assert_eq!(
            suggest("instnace", ["instance", "backup"]),
            Some("instance")
        );
        assert_eq!(suggest("bogus", ["terminate", "spot"]), None);
    }
}
