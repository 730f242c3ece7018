//! Finding duplicate candidates among rows already in memory: pure functions
//! over keys (emails, phones, normalised names, web domains), so the rules
//! are unit-tested without a database.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::accounts::repo::AccountRow;
use crate::contacts::repo::ContactRow;
use crate::values::ContactPoint;

/// Why two records look like the same customer.
#[derive(async_graphql::Enum, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DuplicateReason {
    /// They share an email address.
    SameEmail,
    /// They share a phone number.
    SamePhone,
    /// They share a web site domain (accounts).
    SameDomain,
    /// Contacts: same last name at the same account, first names equal or one
    /// an initial or prefix of the other. Accounts: the same name once case,
    /// punctuation and legal suffixes (GmbH, Inc, Ltd, …) are ignored.
    SimilarName,
}

impl DuplicateReason {
    /// The weight of this reason alone (0..1).
    pub fn score(self) -> f64 {
        match self {
            DuplicateReason::SameEmail => 0.95,
            DuplicateReason::SameDomain => 0.85,
            DuplicateReason::SamePhone => 0.8,
            DuplicateReason::SimilarName => 0.6,
        }
    }
}

/// Several reasons combine like independent evidence: 1 - Π(1 - score).
pub fn combined(reasons: &BTreeSet<DuplicateReason>) -> f64 {
    let miss: f64 = reasons.iter().map(|r| 1.0 - r.score()).product();
    ((1.0 - miss) * 1000.0).round() / 1000.0
}

/// A pair of record indexes (smaller first) and why they match.
pub type Pairs = BTreeMap<(usize, usize), BTreeSet<DuplicateReason>>;

/// Records sharing one key beyond this many are only paired within the first
/// ones: a key held by hundreds of records (a shared switchboard number) is
/// not a useful duplicate signal and would make the result quadratic.
const MAX_GROUP: usize = 50;

fn pair_groups<K: std::hash::Hash + Eq>(
    out: &mut Pairs,
    keys: impl IntoIterator<Item = (K, usize)>,
    reason: DuplicateReason,
) {
    let mut groups: HashMap<K, Vec<usize>> = HashMap::new();
    for (k, i) in keys {
        let g = groups.entry(k).or_default();
        if g.last() != Some(&i) && g.len() < MAX_GROUP {
            g.push(i);
        }
    }
    for g in groups.values() {
        for (n, &a) in g.iter().enumerate() {
            for &b in &g[n + 1..] {
                out.entry((a.min(b), a.max(b))).or_default().insert(reason);
            }
        }
    }
}

fn points(json: &str) -> Vec<String> {
    serde_json::from_str::<Vec<ContactPoint>>(json)
        .unwrap_or_default()
        .into_iter()
        .map(|p| p.value.trim().to_lowercase())
        .filter(|v| !v.is_empty())
        .collect()
}

/// First names that may be the same person: equal, or one an initial or a
/// prefix of the other ("J." / "Jane", "Chris" / "Christopher").
pub fn first_names_match(a: &str, b: &str) -> bool {
    let norm = |s: &str| s.trim().trim_end_matches('.').to_lowercase();
    let (a, b) = (norm(a), norm(b));
    if a.is_empty() || b.is_empty() {
        return false;
    }
    a.starts_with(&b) || b.starts_with(&a)
}

/// Duplicate pairs among contacts: same email, same phone, similar name at
/// the same account.
pub fn contact_pairs(rows: &[ContactRow]) -> Pairs {
    let mut out = Pairs::new();
    pair_groups(
        &mut out,
        rows.iter()
            .enumerate()
            .flat_map(|(i, r)| points(&r.emails).into_iter().map(move |e| (e, i))),
        DuplicateReason::SameEmail,
    );
    pair_groups(
        &mut out,
        rows.iter()
            .enumerate()
            .flat_map(|(i, r)| points(&r.phones).into_iter().map(move |p| (p, i))),
        DuplicateReason::SamePhone,
    );
    // Names: group by (account, last name), then compare first names.
    let mut by_name: HashMap<(&str, String), Vec<usize>> = HashMap::new();
    for (i, r) in rows.iter().enumerate() {
        let last = r.last_name.trim().to_lowercase();
        if let Some(acc) = r.account_id.as_deref()
            && !last.is_empty()
        {
            by_name.entry((acc, last)).or_default().push(i);
        }
    }
    for g in by_name.values() {
        let g = &g[..g.len().min(MAX_GROUP)];
        for (n, &a) in g.iter().enumerate() {
            for &b in &g[n + 1..] {
                if first_names_match(&rows[a].first_name, &rows[b].first_name) {
                    out.entry((a.min(b), a.max(b)))
                        .or_default()
                        .insert(DuplicateReason::SimilarName);
                }
            }
        }
    }
    out
}

/// Legal-form words ignored when comparing company names.
const LEGAL_SUFFIXES: &[&str] = &[
    "gmbh",
    "ag",
    "kg",
    "ug",
    "se",
    "inc",
    "incorporated",
    "ltd",
    "limited",
    "llc",
    "llp",
    "corp",
    "corporation",
    "co",
    "company",
    "plc",
    "sa",
    "sarl",
    "sas",
    "srl",
    "spa",
    "bv",
    "nv",
    "oy",
    "ab",
    "as",
    "pty",
    "kk",
];

/// A company name for comparison: lower case, punctuation dropped, legal
/// suffixes removed ("ACME, Inc." and "Acme GmbH" both become "acme").
pub fn company_key(name: &str) -> String {
    let cleaned: String = name
        .to_lowercase()
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect();
    let words: Vec<&str> = cleaned.split_whitespace().collect();
    let kept: Vec<&str> = words
        .iter()
        .copied()
        .filter(|w| !LEGAL_SUFFIXES.contains(w))
        .collect();
    // A name made only of legal words ("AG") keeps them rather than
    // matching every other such name.
    if kept.is_empty() {
        words.join(" ")
    } else {
        kept.join(" ")
    }
}

/// The host of a web site without scheme, `www.`, port or path.
pub fn domain(website: &str) -> Option<String> {
    let s = website.trim().to_lowercase();
    let s = s.split_once("://").map_or(s.as_str(), |(_, rest)| rest);
    let host = s.split(['/', '?', '#']).next()?;
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    let host = host.split(':').next()?;
    let host = host.strip_prefix("www.").unwrap_or(host);
    (host.contains('.') && !host.starts_with('.')).then(|| host.to_owned())
}

/// Duplicate pairs among accounts: similar name, same web domain, same phone.
pub fn account_pairs(rows: &[AccountRow]) -> Pairs {
    let mut out = Pairs::new();
    pair_groups(
        &mut out,
        rows.iter()
            .enumerate()
            .map(|(i, r)| (company_key(&r.name), i))
            .filter(|(k, _)| !k.is_empty()),
        DuplicateReason::SimilarName,
    );
    pair_groups(
        &mut out,
        rows.iter()
            .enumerate()
            .filter_map(|(i, r)| r.website.as_deref().and_then(domain).map(|d| (d, i))),
        DuplicateReason::SameDomain,
    );
    pair_groups(
        &mut out,
        rows.iter()
            .enumerate()
            .filter_map(|(i, r)| r.phone.clone().map(|p| (p, i))),
        DuplicateReason::SamePhone,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn company_names_ignore_case_punctuation_and_legal_form() {
        assert_eq!(company_key("ACME, Inc."), "acme");
        assert_eq!(company_key("Acme GmbH"), "acme");
        assert_eq!(company_key("Müller & Söhne AG"), "müller söhne");
        assert_eq!(company_key("AG"), "ag");
        assert_ne!(company_key("Acme Tools"), company_key("Acme"));
    }

    #[test]
    fn domains_are_hosts() {
        assert_eq!(
            domain("https://www.Acme.com/about").as_deref(),
            Some("acme.com")
        );
        assert_eq!(domain("acme.com:8080").as_deref(), Some("acme.com"));
        assert_eq!(domain("localhost"), None);
    }

    #[test]
    fn first_names_and_scores() {
        assert!(first_names_match("J.", "Jane"));
        assert!(first_names_match("Chris", "christopher"));
        assert!(!first_names_match("Jane", "John"));
        assert!(!first_names_match("", "John"));
        let both = BTreeSet::from([DuplicateReason::SameEmail, DuplicateReason::SamePhone]);
        assert_eq!(combined(&both), 0.99);
        assert_eq!(
            combined(&BTreeSet::from([DuplicateReason::SimilarName])),
            0.6
        );
    }
}
