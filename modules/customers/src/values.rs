//! Value types shared by accounts and contacts: lifecycle stages, money,
//! addresses, typed emails and phones, consent, and their normalisation.

use async_graphql::{Enum, InputObject, SimpleObject};
use crm_core::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// Where an account is in its life with us.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LifecycleStage {
    /// Not a customer yet.
    Prospect,
    /// A paying customer.
    Active,
    /// A customer showing signs of leaving.
    AtRisk,
    /// A former customer.
    Churned,
}

/// Company size by head count.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SizeBand {
    /// 1–10 people.
    Micro,
    /// 11–50.
    Small,
    /// 51–250.
    Medium,
    /// 251–1000.
    Large,
    /// More than 1000.
    Enterprise,
}

/// Kind of an email address or phone number.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContactPointKind {
    /// At work.
    Work,
    /// Private.
    Home,
    /// Mobile phone.
    Mobile,
    /// Anything else.
    Other,
}

/// How a contact prefers to be reached.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// Email.
    Email,
    /// Phone call.
    Phone,
    /// Text message.
    Sms,
    /// In person.
    InPerson,
}

/// Marketing consent.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentState {
    /// Never asked.
    Unknown,
    /// Agreed to marketing.
    OptedIn,
    /// Withdrew or refused.
    OptedOut,
}

macro_rules! text_enum {
    ($($t:ty),*) => {$(
        impl $t {
            /// The stored text form.
            pub fn as_text(self) -> String {
                serde_json::to_value(self).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
            }
            /// Parses the stored text form.
            pub fn from_text(s: &str) -> Option<Self> {
                serde_json::from_value(serde_json::Value::String(s.to_owned())).ok()
            }
            /// Parses text read from the database: an unknown value is data
            /// corruption, an INTERNAL error (logged), never a silent default.
            pub fn from_stored(s: &str) -> Result<Self> {
                Self::from_text(s).ok_or_else(|| {
                    Error::Internal(format!(
                        "stored {} {s:?} is not a known value (data corruption?)",
                        stringify!($t)
                    ))
                })
            }
        }
    )*};
}
text_enum!(LifecycleStage, SizeBand, Channel, ConsentState);

/// An amount of money in minor units (cents) of an ISO 4217 currency.
#[derive(SimpleObject, InputObject, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[graphql(input_name = "MoneyInput")]
pub struct Money {
    /// Amount in minor units, e.g. 12345 for 123.45 EUR.
    pub amount_minor: i64,
    /// ISO 4217 code, e.g. `EUR`.
    pub currency: String,
}

impl Money {
    /// Checks the currency code; VALIDATION names `field`.
    pub fn checked(mut self, field: &str) -> Result<Money> {
        self.currency = self.currency.trim().to_uppercase();
        if self.currency.len() != 3 || !self.currency.chars().all(|c| c.is_ascii_uppercase()) {
            return Err(Error::invalid(
                field,
                "currency must be a 3-letter ISO 4217 code",
            ));
        }
        if self.amount_minor < 0 {
            return Err(Error::invalid(field, "amount must not be negative"));
        }
        Ok(self)
    }
}

/// A postal address.
#[derive(
    SimpleObject, InputObject, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize,
)]
#[graphql(input_name = "AddressInput")]
pub struct Address {
    /// Street and number.
    pub street: Option<String>,
    /// City.
    pub city: Option<String>,
    /// Postal code.
    pub postal_code: Option<String>,
    /// Region or state.
    pub region: Option<String>,
    /// ISO 3166-1 alpha-2 country code.
    pub country: Option<String>,
}

/// An email address or phone number with its kind.
#[derive(SimpleObject, InputObject, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[graphql(input_name = "ContactPointInput")]
pub struct ContactPoint {
    /// Work, home, mobile, other.
    pub kind: ContactPointKind,
    /// The normalised value (lower-case email; E.164 phone).
    pub value: String,
}

/// Lower-cases and checks an email address.
pub fn normalize_email(s: &str, field: &str) -> Result<String> {
    crm_core::identity::service::normalize_email(s, field)
}

/// Normalises a phone number to E.164 (`+` country code and number).
/// Numbers without a `+` or `00` prefix get `default_code`, dropping a
/// national trunk `0`.
pub fn normalize_phone(s: &str, default_code: &str, field: &str) -> Result<String> {
    let t = s.trim();
    let international = t.starts_with('+') || t.starts_with("00");
    if t.chars()
        .any(|c| !(c.is_ascii_digit() || " +-()./".contains(c)))
    {
        return Err(Error::invalid(
            field,
            format!("{t:?} is not a phone number"),
        ));
    }
    let mut digits: String = t.chars().filter(char::is_ascii_digit).collect();
    if t.starts_with("00") {
        digits = digits[2..].to_owned();
    }
    if !international {
        let national = digits.strip_prefix('0').unwrap_or(&digits);
        digits = format!("{default_code}{national}");
    }
    if !(8..=15).contains(&digits.len()) || digits.starts_with('0') {
        return Err(Error::invalid(
            field,
            format!("{t:?} is not a valid international number"),
        ));
    }
    Ok(format!("+{digits}"))
}

/// Trims an optional text; empty becomes None; longer than `max` is invalid.
pub fn opt_text(v: Option<String>, max: usize, field: &str) -> Result<Option<String>> {
    match v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()) {
        Some(s) if s.chars().count() > max => Err(Error::invalid(
            field,
            format!("must be at most {max} characters"),
        )),
        other => Ok(other),
    }
}

/// A required text of 1 to `max` characters.
pub fn req_text(v: &str, max: usize, field: &str) -> Result<String> {
    let s = v.trim();
    if s.is_empty() || s.chars().count() > max {
        return Err(Error::invalid(
            field,
            format!("must be 1 to {max} characters"),
        ));
    }
    Ok(s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_become_e164() {
        assert_eq!(
            normalize_phone("+49 (30) 1234-5678", "1", "p").unwrap(),
            "+493012345678"
        );
        assert_eq!(
            normalize_phone("0049 30 12345678", "1", "p").unwrap(),
            "+493012345678"
        );
        assert_eq!(
            normalize_phone("030 12345678", "49", "p").unwrap(),
            "+493012345678"
        );
        assert_eq!(
            normalize_phone("(415) 555-0100", "1", "p").unwrap(),
            "+14155550100"
        );
        assert!(normalize_phone("call me", "1", "p").is_err());
        assert!(normalize_phone("12", "1", "p").is_err());
    }

    #[test]
    fn money_and_stages() {
        assert!(
            Money {
                amount_minor: 5,
                currency: "eur".into()
            }
            .checked("m")
            .is_ok()
        );
        assert!(
            Money {
                amount_minor: 5,
                currency: "euro".into()
            }
            .checked("m")
            .is_err()
        );
        assert_eq!(LifecycleStage::AtRisk.as_text(), "at_risk");
        assert_eq!(
            LifecycleStage::from_text("churned"),
            Some(LifecycleStage::Churned)
        );
    }
}
