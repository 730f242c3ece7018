//! The module's value types: where a lead came from, where it stands, and
//! the normalised company name the duplicate check compares.

use async_graphql::Enum;
use crm_core::error::{Error, Result};

/// Declares a GraphQL enum stored as its SCREAMING_CASE name.
macro_rules! stored_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// The stored text.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// From the stored text (INTERNAL if the database holds
            /// something else).
            pub fn from_stored(s: &str) -> Result<$name> {
                $name::parse(s).ok_or_else(|| Error::Internal(format!(
                    concat!("unknown ", stringify!($name), " {}"),
                    s
                )))
            }

            /// From text as a file or form writes it (any case, spaces or
            /// dashes for underscores).
            pub fn parse(s: &str) -> Option<$name> {
                match s.trim().to_uppercase().replace([' ', '-'], "_").as_str() {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }
    };
}

stored_enum!(
    /// Where a lead came from.
    LeadSource {
        /// A form on a website.
        WebForm = "WEB_FORM",
        /// A file import.
        Import = "IMPORT",
        /// Another system, over the API.
        Api = "API",
        /// A marketing campaign.
        Campaign = "CAMPAIGN",
        /// Recommended by someone.
        Referral = "REFERRAL",
        /// A trade show, webinar or meetup.
        Event = "EVENT",
        /// Anything else.
        Other = "OTHER",
    }
);

stored_enum!(
    /// Where an assignment rule sends the leads it matches.
    AssignmentTargetKind {
        /// One user (`targetUserId`).
        User = "USER",
        /// The active members of a team in turn (`teamId`).
        RoundRobin = "ROUND_ROBIN",
        /// A team's queue, unowned (`teamId`).
        Queue = "QUEUE",
    }
);

stored_enum!(
    /// Where a lead stands.
    LeadStatus {
        /// Not looked at yet.
        New = "NEW",
        /// Being worked on.
        Working = "WORKING",
        /// Not ready to buy; kept warm.
        Nurturing = "NURTURING",
        /// Worth converting.
        Qualified = "QUALIFIED",
        /// Not a prospect (needs a reason).
        Unqualified = "UNQUALIFIED",
        /// Converted into an account, a contact and maybe an opportunity
        /// (set by `convertLead` only).
        Converted = "CONVERTED",
    }
);

/// Legal-form words left out of a company name before comparing.
const LEGAL_FORMS: &[&str] = &[
    "inc",
    "incorporated",
    "corp",
    "corporation",
    "co",
    "company",
    "llc",
    "ltd",
    "limited",
    "plc",
    "gmbh",
    "ag",
    "sa",
    "sas",
    "sarl",
    "srl",
    "spa",
    "bv",
    "nv",
    "oy",
    "ab",
    "as",
    "kg",
    "ug",
    "pty",
    "pte",
    "kk",
    "the",
];

/// A company name as the duplicate check compares it: lower case, letters
/// and digits only, legal forms left out ("ACME, Inc." and "Acme" match).
/// None when nothing is left.
pub fn company_key(name: &str) -> Option<String> {
    let lowered = name.to_lowercase();
    let words: Vec<String> = lowered
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty() && !LEGAL_FORMS.contains(w))
        .map(str::to_owned)
        .collect();
    let key = words.concat();
    (!key.is_empty()).then_some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn company_names_compare_without_legal_forms() {
        assert_eq!(company_key("ACME, Inc."), Some("acme".into()));
        assert_eq!(company_key("Acme GmbH"), company_key("acme"));
        assert_eq!(company_key("Blue Sky Ltd"), Some("bluesky".into()));
        assert_eq!(company_key("Inc."), None);
        assert_eq!(
            LeadStatus::parse("unqualified"),
            Some(LeadStatus::Unqualified)
        );
        assert_eq!(LeadSource::parse("web form"), Some(LeadSource::WebForm));
        assert!(LeadStatus::from_stored("gone").is_err());
    }
}
