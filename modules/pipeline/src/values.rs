//! The module's value types: forecast categories, stage kinds, the fields a
//! stage may require, and close dates.

use async_graphql::Enum;
use chrono::NaiveDate;
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
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(Error::Internal(format!(
                        concat!("unknown ", stringify!($name), " {}"),
                        other
                    ))),
                }
            }
        }
    };
}

stored_enum!(
    /// Where an opportunity counts in a forecast.
    ForecastCategory {
        /// Early: counted as pipeline only.
        Pipeline = "PIPELINE",
        /// Could close this period.
        BestCase = "BEST_CASE",
        /// Expected to close this period.
        Commit = "COMMIT",
        /// Won or lost.
        Closed = "CLOSED",
        /// Left out of forecasts.
        Omitted = "OMITTED",
    }
);

stored_enum!(
    /// Whether a stage is still open or ends the deal.
    StageKind {
        /// Still being worked.
        Open = "OPEN",
        /// Won: entering it sets the won date.
        Won = "WON",
        /// Lost: entering it needs a lost reason and sets the lost date.
        Lost = "LOST",
    }
);

stored_enum!(
    /// An opportunity field a stage may require before a deal enters it.
    RequiredField {
        /// `amount`.
        Amount = "amount",
        /// `closeDate`.
        CloseDate = "closeDate",
        /// `primaryContactId`.
        PrimaryContactId = "primaryContactId",
        /// `nextStep`.
        NextStep = "nextStep",
        /// `source`.
        Source = "source",
        /// `campaignId`.
        CampaignId = "campaignId",
    }
);

stored_enum!(
    /// A contact's part in a deal.
    ContactRole {
        /// Makes the decision.
        DecisionMaker = "DECISION_MAKER",
        /// Sways the decision.
        Influencer = "INFLUENCER",
        /// Sells for you inside the customer.
        Champion = "CHAMPION",
        /// Evaluates the offer.
        Evaluator = "EVALUATOR",
        /// Holds the budget.
        EconomicBuyer = "ECONOMIC_BUYER",
        /// Anything else.
        Other = "OTHER",
    }
);

stored_enum!(
    /// The length of a forecast period (a quota's, an adjustment's).
    ForecastPeriod {
        /// A calendar month.
        Month = "MONTH",
        /// A calendar quarter (January, April, July, October).
        Quarter = "QUARTER",
    }
);

stored_enum!(
    /// A forecast figure a manager may adjust.
    ForecastFigure {
        /// Closed won plus open deals in COMMIT.
        Commit = "COMMIT",
        /// Commit plus open deals in BEST_CASE.
        BestCase = "BEST_CASE",
        /// Open deals in PIPELINE, BEST_CASE and COMMIT.
        Pipeline = "PIPELINE",
    }
);

/// A stage's stored required fields (a JSON array of API names).
pub fn required_fields(stored: &str) -> Result<Vec<RequiredField>> {
    let names: Vec<String> =
        serde_json::from_str(stored).map_err(|e| Error::Internal(e.to_string()))?;
    names
        .iter()
        .map(|n| RequiredField::from_stored(n))
        .collect()
}

/// The stored form of required fields (each once, in the given order).
pub fn store_required(fields: &[RequiredField]) -> String {
    let mut names: Vec<&str> = Vec::new();
    for f in fields {
        if !names.contains(&f.as_str()) {
            names.push(f.as_str());
        }
    }
    serde_json::to_string(&names).unwrap_or_else(|_| "[]".into())
}

stored_enum!(
    /// Where a quote is: DRAFT → SENT → ACCEPTED, REJECTED or EXPIRED.
    QuoteStatus {
        /// Being prepared; the only status in which it may change.
        Draft = "DRAFT",
        /// Sent to the customer.
        Sent = "SENT",
        /// Accepted by the customer: immutable (revise it to change).
        Accepted = "ACCEPTED",
        /// Rejected by the customer.
        Rejected = "REJECTED",
        /// Past its valid-until date while SENT.
        Expired = "EXPIRED",
    }
);

impl QuoteStatus {
    /// Whether a quote may go from `self` to `to`.
    pub fn may_become(self, to: QuoteStatus) -> bool {
        use QuoteStatus::*;
        matches!(
            (self, to),
            (Draft, Sent) | (Sent, Accepted) | (Sent, Rejected) | (Sent, Expired)
        )
    }
}

stored_enum!(
    /// Where a contract is: DRAFT → ACTIVE → EXPIRED or TERMINATED
    /// (TERMINATED also from DRAFT); nothing leaves EXPIRED or TERMINATED.
    ContractStatus {
        /// Being prepared.
        Draft = "DRAFT",
        /// In force between its start and end dates.
        Active = "ACTIVE",
        /// Past its end date (set by the expiry check, or by hand).
        Expired = "EXPIRED",
        /// Ended early.
        Terminated = "TERMINATED",
    }
);

impl ContractStatus {
    /// Whether a contract may go from `self` to `to`.
    pub fn may_become(self, to: ContractStatus) -> bool {
        use ContractStatus::*;
        matches!(
            (self, to),
            (Draft, Active) | (Draft, Terminated) | (Active, Expired) | (Active, Terminated)
        )
    }
}

/// A close date as stored (`YYYY-MM-DD`, which sorts and compares as text).
pub fn store_date(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

/// A stored close date.
pub fn parse_date(s: &str) -> Result<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|e| Error::Internal(e.to_string()))
}

/// A probability in percent (VALIDATION naming `field` outside 0–100).
pub fn probability(p: i64, field: &str) -> Result<i64> {
    if (0..=100).contains(&p) {
        Ok(p)
    } else {
        Err(Error::invalid(field, "must be 0 to 100"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_round_trip_and_required_fields_are_stored_once() {
        assert_eq!(
            ForecastCategory::from_stored("BEST_CASE").unwrap(),
            ForecastCategory::BestCase
        );
        assert!(StageKind::from_stored("open").is_err());
        let stored = store_required(&[
            RequiredField::Amount,
            RequiredField::CloseDate,
            RequiredField::Amount,
        ]);
        assert_eq!(stored, r#"["amount","closeDate"]"#);
        assert_eq!(
            required_fields(&stored).unwrap(),
            vec![RequiredField::Amount, RequiredField::CloseDate]
        );
        assert!(probability(101, "probability").is_err());
        assert_eq!(
            store_date(NaiveDate::from_ymd_opt(2026, 3, 9).unwrap()),
            "2026-03-09"
        );
    }
}
