//! The module's value types: where a lead came from, where it stands, and
//! the normalised company name the duplicate check compares.

use async_graphql::Enum;
use crm_core::error::{Error, Result};

/// Declares a GraphQL enum stored as its SCREAMING_CASE name.
macro_rules! stored_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Enum, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
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

stored_enum!(
    /// The lead field a web form field fills.
    LeadFormTarget {
        /// `firstName`.
        FirstName = "FIRST_NAME",
        /// `lastName`.
        LastName = "LAST_NAME",
        /// `title`.
        Title = "TITLE",
        /// One of `emails` (a work address).
        Email = "EMAIL",
        /// One of `phones` (a work number).
        Phone = "PHONE",
        /// `company`.
        Company = "COMPANY",
        /// `website`.
        Website = "WEBSITE",
        /// `industry`.
        Industry = "INDUSTRY",
        /// `country` (ISO 3166-1 alpha-2).
        Country = "COUNTRY",
        /// `region`.
        Region = "REGION",
        /// `city`.
        City = "CITY",
        /// Not a lead field: the text of the "form submitted" timeline
        /// entry (a message from the visitor).
        Note = "NOTE",
    }
);

impl LeadFormTarget {
    /// The `Lead` field it writes (its name in validation errors), if any.
    pub fn lead_field(self) -> Option<&'static str> {
        Some(match self {
            LeadFormTarget::FirstName => "firstName",
            LeadFormTarget::LastName => "lastName",
            LeadFormTarget::Title => "title",
            LeadFormTarget::Email => "emails",
            LeadFormTarget::Phone => "phones",
            LeadFormTarget::Company => "company",
            LeadFormTarget::Website => "website",
            LeadFormTarget::Industry => "industry",
            LeadFormTarget::Country => "country",
            LeadFormTarget::Region => "region",
            LeadFormTarget::City => "city",
            LeadFormTarget::Note => return None,
        })
    }
}

stored_enum!(
    /// What a web form submission does when a live lead with the same
    /// email exists.
    LeadFormOnMatch {
        /// Writes the submitted fields into that lead.
        UpdateMatching = "UPDATE_MATCHING",
        /// Creates a new lead anyway (the duplicate check links it).
        CreateNew = "CREATE_NEW",
    }
);

stored_enum!(
    /// What a scoring rule scores: a lead's fields (fit) or what it does
    /// (engagement).
    ScoringRuleKind {
        /// A condition on the lead's fields, re-evaluated on every write.
        Fit = "FIT",
        /// Points for an event, decaying with the half-life.
        Engagement = "ENGAGEMENT",
    }
);

stored_enum!(
    /// The lead field a fit rule looks at.
    ScoringField {
        /// `industry` (compared without case).
        Industry = "INDUSTRY",
        /// `sizeBand` (values are size band names; AT_LEAST compares
        /// bands in order MICRO < SMALL < MEDIUM < LARGE < ENTERPRISE).
        SizeBand = "SIZE_BAND",
        /// `country` (ISO 3166-1 alpha-2).
        Country = "COUNTRY",
        /// `region`.
        Region = "REGION",
        /// `city`.
        City = "CITY",
        /// `source` (values are `LeadSource` names).
        Source = "SOURCE",
        /// `title`.
        Title = "TITLE",
        /// `company`.
        Company = "COMPANY",
        /// `website`.
        Website = "WEBSITE",
        /// `emails` (EMAIL_DOMAIN_IN, FREE_MAIL, PRESENT).
        Email = "EMAIL",
        /// `phones` (PRESENT only).
        Phone = "PHONE",
    }
);

stored_enum!(
    /// How a fit rule compares the field with its values.
    ScoringOperator {
        /// The value is one of `values` (no case).
        In = "IN",
        /// The lead has a value and it is none of `values`.
        NotIn = "NOT_IN",
        /// The value is the one in `values`.
        Equals = "EQUALS",
        /// SIZE_BAND only: the band is the one in `values` or larger.
        AtLeast = "AT_LEAST",
        /// EMAIL only: one of the lead's addresses is at a domain in
        /// `values`.
        EmailDomainIn = "EMAIL_DOMAIN_IN",
        /// EMAIL only: one of the lead's addresses is at a free mail
        /// provider (gmail.com, outlook.com, …; no values).
        FreeMail = "FREE_MAIL",
        /// The field has a value (no values).
        Present = "PRESENT",
    }
);

stored_enum!(
    /// What an engagement rule gives points for.
    EngagementEvent {
        /// A web form submitted for the lead.
        FormSubmitted = "FORM_SUBMITTED",
        /// A call, email, meeting or note logged on the lead's timeline
        /// (not a task).
        ActivityLogged = "ACTIVITY_LOGGED",
        /// A marketing email opened.
        EmailOpened = "EMAIL_OPENED",
        /// A link in a marketing email clicked.
        EmailClicked = "EMAIL_CLICKED",
    }
);

stored_enum!(
    /// A lead's grade, from its score and the grade thresholds.
    LeadGrade {
        /// At least the A threshold.
        A = "A",
        /// At least the B threshold.
        B = "B",
        /// At least the C threshold.
        C = "C",
        /// At least the D threshold.
        D = "D",
        /// Below every threshold.
        F = "F",
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
