//! Importing accounts and contacts from CSV files.
//!
//! The same engine serves `crm import` and the `importAccounts` /
//! `importContacts` mutations. A file is streamed in batches, so memory stays
//! bounded whatever its length. Every row goes through the same validation
//! as an API write; problems go to the job's error report (line, column,
//! message).
//!
//! Modes:
//! - all-or-nothing (default): the whole file is validated first; if any row
//!   is bad nothing is written, otherwise every row is written in one
//!   transaction.
//! - skip-bad-rows: each batch of good rows is committed on its own; bad rows
//!   are reported and left out. A cancel or failure keeps the batches already
//!   committed, never part of a row.
//!
//! A dry run validates everything and writes nothing but the report.

use std::collections::HashMap;
use std::path::Path;

use async_graphql::{Enum, ID, InputObject};
use crm_core::access::{self, Principal, RowFilter, row_filter_for};
use crm_core::app::App;
use crm_core::change::{self, Change};
use crm_core::custom::{self, Def};
use crm_core::db::Conn;
use crm_core::error::{Error, FieldError, Result};
use crm_core::identity::repo as users;
use crm_core::ids;
use crm_core::jobs::{self, Counters, JobStatus, Outcome, RowError};
use crm_core::tabular::{CsvSource, Encoding, Row};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::TOPIC;
use crate::accounts::repo::{self as account_repo, AccountRow, StageChangeRow};
use crate::accounts::service::{self as account_service, AccountFields};
use crate::contacts::repo::{self as contact_repo, ContactRow};
use crate::contacts::{self, ConsentInput};
use crate::values::{
    Address, Channel, ConsentState, ContactPoint, ContactPointKind, LifecycleStage, Money, SizeBand,
};

/// Rows per batch (one transaction per batch in skip-bad-rows mode).
const BATCH: usize = 500;

/// What a file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Entity {
    /// Accounts (companies).
    Accounts,
    /// Contacts (people).
    Contacts,
}

impl Entity {
    /// The job kind.
    pub fn job_kind(self) -> &'static str {
        match self {
            Entity::Accounts => "import.accounts",
            Entity::Contacts => "import.contacts",
        }
    }

    fn type_name(self) -> &'static str {
        match self {
            Entity::Accounts => "Account",
            Entity::Contacts => "Contact",
        }
    }
}

/// What happens to a bad row.
#[derive(Enum, Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImportMode {
    /// Any bad row and nothing is written.
    #[default]
    AllOrNothing,
    /// Bad rows are reported and left out; good rows are written.
    SkipBadRows,
}

/// What happens to a row that matches an existing record (same `id`, same
/// first email for contacts, same name for accounts).
#[derive(Enum, Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DuplicateHandling {
    /// Leave the existing record alone.
    #[default]
    Skip,
    /// Update the existing record with the row's non-empty cells.
    Update,
    /// Create a new record anyway.
    Create,
}

/// The character encoding of an uploaded file.
#[derive(Enum, Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[graphql(name = "FileEncoding")]
#[serde(rename_all = "lowercase")]
pub enum FileEncoding {
    /// UTF-8 if the file starts as valid UTF-8 (or with a BOM), else GBK.
    #[default]
    Auto,
    /// UTF-8, with or without BOM.
    Utf8,
    /// GBK / GB18030.
    Gbk,
}

impl From<FileEncoding> for Encoding {
    fn from(e: FileEncoding) -> Self {
        match e {
            FileEncoding::Auto => Encoding::Auto,
            FileEncoding::Utf8 => Encoding::Utf8,
            FileEncoding::Gbk => Encoding::Gbk,
        }
    }
}

/// Reads a file column into a field.
#[derive(InputObject, Clone, Debug, Serialize, Deserialize)]
pub struct ColumnMapping {
    /// The header as written in the file.
    pub column: String,
    /// The field it fills (e.g. `lastName`), or `ignore`.
    pub field: String,
}

/// How to import a file.
#[derive(InputObject, Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportOptions {
    /// All-or-nothing (default) or skip bad rows.
    #[graphql(default)]
    #[serde(default)]
    pub mode: ImportMode,
    /// Rows matching an existing record: skip (default), update or create.
    #[graphql(default)]
    #[serde(default)]
    pub duplicates: DuplicateHandling,
    /// Validate and report only; write nothing.
    #[graphql(default)]
    #[serde(default)]
    pub dry_run: bool,
    /// The file's character encoding.
    #[graphql(default)]
    #[serde(default)]
    pub encoding: FileEncoding,
    /// Columns whose header is not a field name (others are matched by
    /// name; see the README for the accepted headers).
    #[graphql(default)]
    #[serde(default)]
    pub mapping: Vec<ColumnMapping>,
    /// Owner of rows without an owner column (default: you).
    pub default_owner_id: Option<ID>,
}

/// A field a column can fill.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum F {
    Id,
    // contacts
    FirstName,
    LastName,
    Title,
    Emails,
    Phones,
    PreferredChannel,
    Language,
    AccountId,
    Account,
    Consent,
    ConsentSource,
    // accounts
    Name,
    Industry,
    SizeBand,
    Website,
    Phone,
    Street,
    City,
    PostalCode,
    Region,
    Country,
    AnnualRevenue,
    RevenueCurrency,
    CreditLimit,
    CreditCurrency,
    LifecycleStage,
    Rating,
    Source,
    Notes,
    // both
    OwnerId,
    OwnerEmail,
    /// Read-only columns of an export (createdAt, version, …): skipped.
    Ignore,
    /// A custom field (index into the run's definitions).
    Custom(u16),
}

impl F {
    /// The field's name in the API (and in exports).
    fn name(self) -> &'static str {
        match self {
            F::Id => "id",
            F::FirstName => "firstName",
            F::LastName => "lastName",
            F::Title => "title",
            F::Emails => "emails",
            F::Phones => "phones",
            F::PreferredChannel => "preferredChannel",
            F::Language => "language",
            F::AccountId => "accountId",
            F::Account => "account",
            F::Consent => "consent",
            F::ConsentSource => "consentSource",
            F::Name => "name",
            F::Industry => "industry",
            F::SizeBand => "sizeBand",
            F::Website => "website",
            F::Phone => "phone",
            F::Street => "street",
            F::City => "city",
            F::PostalCode => "postalCode",
            F::Region => "region",
            F::Country => "country",
            F::AnnualRevenue => "annualRevenue",
            F::RevenueCurrency => "revenueCurrency",
            F::CreditLimit => "creditLimit",
            F::CreditCurrency => "creditCurrency",
            F::LifecycleStage => "lifecycleStage",
            F::Rating => "rating",
            F::Source => "source",
            F::Notes => "notes",
            F::OwnerId => "ownerId",
            F::OwnerEmail => "ownerEmail",
            F::Ignore => "ignore",
            F::Custom(_) => "custom",
        }
    }

    /// The policy field a column writes (`Contact.emails`), if any.
    fn policy_field(self) -> Option<&'static str> {
        match self {
            F::Id | F::Ignore | F::Custom(_) => None,
            F::OwnerEmail => Some("ownerId"),
            F::Account => Some("accountId"),
            F::Consent | F::ConsentSource => Some("consent"),
            F::Street | F::City | F::PostalCode | F::Region | F::Country => Some("address"),
            F::RevenueCurrency => Some("annualRevenue"),
            F::CreditCurrency => Some("creditLimit"),
            other => Some(other.name()),
        }
    }
}

/// Header spellings accepted per entity, compared after lower-casing and
/// dropping everything but letters and digits.
fn lookup(entity: Entity, header: &str) -> Option<F> {
    let key: String = header
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect();
    let common = match key.as_str() {
        "id" => Some(F::Id),
        "ownerid" => Some(F::OwnerId),
        "owneremail" | "owner" | "负责人" => Some(F::OwnerEmail),
        "createdat" | "updatedat" | "version" | "deletedat" | "tags" | "team" | "teamid" => {
            Some(F::Ignore)
        }
        _ => None,
    };
    if common.is_some() {
        return common;
    }
    match entity {
        Entity::Contacts => match key.as_str() {
            "firstname" | "givenname" | "first" | "forename" | "名" => Some(F::FirstName),
            "lastname" | "surname" | "familyname" | "last" | "姓" => Some(F::LastName),
            "title" | "jobtitle" | "position" | "职位" | "职务" => Some(F::Title),
            "email" | "emails" | "emailaddress" | "mail" | "邮箱" | "电子邮件" | "电子邮箱" => {
                Some(F::Emails)
            }
            "phone" | "phones" | "phonenumber" | "telephone" | "tel" | "mobile" | "电话"
            | "手机" => Some(F::Phones),
            "preferredchannel" | "channel" => Some(F::PreferredChannel),
            "language" | "lang" | "语言" => Some(F::Language),
            "accountid" => Some(F::AccountId),
            "account" | "accountname" | "company" | "companyname" | "organisation"
            | "organization" | "公司" | "单位" => Some(F::Account),
            "consent" | "consentstate" => Some(F::Consent),
            "consentsource" => Some(F::ConsentSource),
            _ => None,
        },
        Entity::Accounts => match key.as_str() {
            "name" | "accountname" | "company" | "companyname" | "公司" | "公司名称" | "名称" => {
                Some(F::Name)
            }
            "industry" | "行业" => Some(F::Industry),
            "sizeband" | "size" => Some(F::SizeBand),
            "website" | "web" | "url" | "网站" => Some(F::Website),
            "phone" | "telephone" | "tel" | "电话" => Some(F::Phone),
            "street" | "address" | "addressstreet" | "地址" => Some(F::Street),
            "city" | "城市" => Some(F::City),
            "postalcode" | "zip" | "zipcode" | "postcode" | "邮编" => Some(F::PostalCode),
            "region" | "state" | "province" | "省份" => Some(F::Region),
            "country" | "国家" => Some(F::Country),
            "annualrevenue" | "revenue" => Some(F::AnnualRevenue),
            "revenuecurrency" => Some(F::RevenueCurrency),
            "creditlimit" => Some(F::CreditLimit),
            "creditcurrency" => Some(F::CreditCurrency),
            "lifecyclestage" | "stage" => Some(F::LifecycleStage),
            "rating" => Some(F::Rating),
            "source" | "leadsource" => Some(F::Source),
            "notes" | "note" | "备注" => Some(F::Notes),
            "addressjson" => Some(F::Ignore),
            _ => None,
        },
    }
}

/// The columns of a file resolved to fields.
struct Columns {
    fields: Vec<Option<F>>,
    headers: Vec<String>,
}

impl Columns {
    fn resolve(
        entity: Entity,
        headers: &[String],
        mapping: &[ColumnMapping],
        defs: &[Def],
    ) -> Result<Columns> {
        // `custom.<key>` (as exports write it), or a custom field's key or
        // label when no built-in field has that name.
        let custom = |name: &str| -> Option<F> {
            let n = name.trim();
            let key = n.strip_prefix("custom.").unwrap_or(n);
            defs.iter()
                .position(|d| d.key.eq_ignore_ascii_case(key))
                .or_else(|| defs.iter().position(|d| d.label.eq_ignore_ascii_case(n)))
                .map(|i| F::Custom(i as u16))
        };
        let mut fields = Vec::with_capacity(headers.len());
        let mut unknown = Vec::new();
        for m in mapping {
            if !headers
                .iter()
                .any(|h| h.eq_ignore_ascii_case(m.column.trim()))
            {
                unknown.push(FieldError {
                    field: "mapping".into(),
                    message: format!("the file has no column {:?}", m.column),
                });
            }
        }
        for h in headers {
            let mapped = mapping
                .iter()
                .find(|m| m.column.trim().eq_ignore_ascii_case(h));
            let f = match mapped {
                Some(m) if m.field.eq_ignore_ascii_case("ignore") => Some(F::Ignore),
                Some(m) => match lookup(entity, &m.field).or_else(|| custom(&m.field)) {
                    Some(f) => Some(f),
                    None => {
                        unknown.push(FieldError {
                            field: "mapping".into(),
                            message: format!(
                                "{:?} is not a field of {}",
                                m.field,
                                entity.type_name()
                            ),
                        });
                        None
                    }
                },
                None if h.is_empty() => Some(F::Ignore),
                None => match lookup(entity, h).or_else(|| custom(h)) {
                    Some(f) => Some(f),
                    None => {
                        unknown.push(FieldError {
                            field: "file".into(),
                            message: format!(
                                "column {h:?} is not a field of {}; map it to a field or to \"ignore\"",
                                entity.type_name()
                            ),
                        });
                        None
                    }
                },
            };
            fields.push(f);
        }
        let mut seen = HashMap::new();
        for (i, f) in fields.iter().enumerate() {
            if let Some(f) = f.filter(|f| *f != F::Ignore)
                && let Some(j) = seen.insert(f, i)
            {
                unknown.push(FieldError {
                    field: "file".into(),
                    message: format!(
                        "columns {:?} and {:?} both fill {}",
                        headers[j],
                        headers[i],
                        f.name()
                    ),
                });
            }
        }
        let has = |f: F| fields.contains(&Some(f));
        let required: &[F] = match entity {
            Entity::Contacts => &[F::FirstName, F::LastName],
            Entity::Accounts => &[F::Name],
        };
        for r in required {
            if !has(*r) && !has(F::Id) {
                unknown.push(FieldError {
                    field: "file".into(),
                    message: format!("a column for {} is required", r.name()),
                });
            }
        }
        if !unknown.is_empty() {
            return Err(Error::Validation(unknown));
        }
        Ok(Columns {
            fields,
            headers: headers.to_vec(),
        })
    }

    /// The header of the column filling `f`.
    fn header(&self, f: F) -> Option<&str> {
        self.fields
            .iter()
            .position(|x| *x == Some(f))
            .map(|i| self.headers[i].as_str())
    }

    fn used(&self) -> impl Iterator<Item = F> + '_ {
        self.fields.iter().flatten().copied()
    }
}

/// The non-empty cells of one row by field.
struct Cells<'a> {
    values: HashMap<F, &'a str>,
}

impl<'a> Cells<'a> {
    fn new(cols: &Columns, row: &'a Row) -> Self {
        let values = cols
            .fields
            .iter()
            .zip(&row.values)
            .filter_map(|(f, v)| {
                let v = v.trim();
                match f {
                    Some(f) if *f != F::Ignore && !v.is_empty() => Some((*f, v)),
                    _ => None,
                }
            })
            .collect();
        Cells { values }
    }

    fn get(&self, f: F) -> Option<&'a str> {
        self.values.get(&f).copied()
    }

    fn text(&self, f: F) -> Option<String> {
        self.get(f).map(str::to_owned)
    }
}

/// Splits a multi-value cell (`a@x.org; b@y.org`).
fn split_list(s: &str) -> Vec<String> {
    s.split([';', ',', '\n', '；', '，'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Parses an enum cell by its API or stored name (`In person`, `IN_PERSON`).
fn enum_cell<T>(
    s: &str,
    parse: impl Fn(&str) -> Option<T>,
    allowed: &str,
    field: F,
    errs: &mut Vec<(F, String)>,
) -> Option<T> {
    let key = s.trim().to_lowercase().replace([' ', '-'], "_");
    match parse(&key) {
        Some(v) => Some(v),
        None => {
            errs.push((field, format!("{s:?} is not one of {allowed}")));
            None
        }
    }
}

/// Parses an amount in major units (`1234.5`, `1,234.50`, `1234.50 EUR`)
/// into minor units and an optional currency.
fn money_cell(s: &str) -> std::result::Result<(i64, Option<String>), String> {
    let s = s.trim();
    let (num, cur) = match s.rsplit_once(' ') {
        Some((n, c)) if c.len() == 3 && c.chars().all(|c| c.is_ascii_alphabetic()) => {
            (n.trim(), Some(c.to_uppercase()))
        }
        _ => (s, None),
    };
    let num = num.replace([',', '_'], "");
    let bad = || format!("{s:?} is not an amount (write e.g. 1234.50)");
    let (whole, frac) = match num.split_once('.') {
        Some((w, f)) => (w.to_owned(), f.to_owned()),
        None => (num.clone(), String::new()),
    };
    if whole.is_empty() && frac.is_empty()
        || frac.len() > 2
        || !whole.chars().all(|c| c.is_ascii_digit())
        || !frac.chars().all(|c| c.is_ascii_digit())
    {
        return Err(bad());
    }
    let whole: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| bad())?
    };
    let cents: i64 = format!("{frac:0<2}").parse().map_err(|_| bad())?;
    whole
        .checked_mul(100)
        .and_then(|w| w.checked_add(cents))
        .map(|m| (m, cur))
        .ok_or_else(bad)
}

/// One validated row, ready to write.
enum Prepared {
    NewContact(Box<ContactRow>),
    UpdateContact(Box<ContactRow>, Box<ContactRow>),
    NewAccount(Box<AccountRow>),
    UpdateAccount(Box<AccountRow>, Box<AccountRow>),
    /// Folded into a record an earlier row of the same batch writes.
    Merged,
    Skip,
}

/// An import in progress.
struct Run<'a> {
    app: &'a App,
    by: &'a Principal,
    entity: Entity,
    opts: &'a ImportOptions,
    cols: Columns,
    read_scope: RowFilter,
    update_scope: Option<RowFilter>,
    account_scope: RowFilter,
    default_owner: Option<String>,
    /// Owner references already checked: key -> user id or the problem.
    owners: HashMap<String, std::result::Result<String, String>>,
    /// Account names already looked up (lower case) -> id or the problem.
    accounts: HashMap<String, std::result::Result<String, String>>,
    /// The entity's live custom field definitions.
    defs: std::sync::Arc<Vec<Def>>,
}

/// What one batch did.
#[derive(Default)]
struct BatchResult {
    counters: Counters,
    errors: Vec<RowError>,
    writes: Vec<Prepared>,
}

impl Run<'_> {
    fn column_of(&self, field: &str) -> String {
        let f = match field {
            "emails" => Some(F::Emails),
            "phones" => Some(F::Phones),
            "firstName" => Some(F::FirstName),
            "lastName" => Some(F::LastName),
            "ownerId" => self
                .cols
                .header(F::OwnerId)
                .map(|_| F::OwnerId)
                .or(Some(F::OwnerEmail)),
            "accountId" => self
                .cols
                .header(F::AccountId)
                .map(|_| F::AccountId)
                .or(Some(F::Account)),
            _ => match field.strip_prefix("custom.") {
                Some(key) => self
                    .cols
                    .used()
                    .find(|f| matches!(f, F::Custom(i) if self.defs[*i as usize].key == key)),
                None => self.cols.used().find(|f| f.name() == field),
            },
        };
        f.and_then(|f| self.cols.header(f))
            .unwrap_or(field)
            .to_owned()
    }

    async fn owner(
        &mut self,
        conn: &mut Conn<'_>,
        cells: &Cells<'_>,
    ) -> Result<Option<std::result::Result<String, (F, String)>>> {
        let (key, field) = if let Some(id) = cells.get(F::OwnerId) {
            (format!("id:{id}"), F::OwnerId)
        } else if let Some(email) = cells.get(F::OwnerEmail) {
            (format!("email:{}", email.to_lowercase()), F::OwnerEmail)
        } else {
            return Ok(None);
        };
        if !self.owners.contains_key(&key) {
            // The same rule as an API write of `ownerId`: a user the
            // importer may see and assign to; any other user, existing or
            // not, is "no such active user".
            let id = match field {
                F::OwnerId => Some(key[3..].to_owned()),
                _ => users::user_by_email(conn, &key[6..]).await?.map(|u| u.id),
            };
            let found = match id {
                None => Err("no such active user".to_owned()),
                Some(id) => {
                    match access::require_assignable_owner(
                        self.app,
                        self.by,
                        self.entity.type_name(),
                        &id,
                    )
                    .await
                    {
                        Ok(()) => Ok(id),
                        Err(Error::Validation(f)) => {
                            Err(f.first().map(|f| f.message.clone()).unwrap_or_default())
                        }
                        Err(e) => return Err(e),
                    }
                }
            };
            self.owners.insert(key.clone(), found);
        }
        Ok(Some(self.owners[&key].clone().map_err(|m| (field, m))))
    }

    async fn account_ref(
        &mut self,
        conn: &mut Conn<'_>,
        cells: &Cells<'_>,
    ) -> Result<Option<std::result::Result<String, (F, String)>>> {
        if let Some(id) = cells.get(F::AccountId) {
            let key = format!("id:{id}");
            if !self.accounts.contains_key(&key) {
                let ok = ids::check(id, "acc", "accountId").is_ok()
                    && crm_core::entity::store::get::<account_repo::Accounts>(
                        conn,
                        &self.account_scope,
                        id,
                    )
                    .await?
                    .is_some();
                self.accounts.insert(
                    key.clone(),
                    if ok {
                        Ok(id.to_owned())
                    } else {
                        Err("no such account".to_owned())
                    },
                );
            }
            return Ok(Some(
                self.accounts[&key].clone().map_err(|m| (F::AccountId, m)),
            ));
        }
        let Some(name) = cells.get(F::Account) else {
            return Ok(None);
        };
        let key = format!("name:{}", name.to_lowercase());
        if !self.accounts.contains_key(&key) {
            let found =
                account_repo::find_keys(conn, &self.account_scope, &[], &[name.to_lowercase()])
                    .await?;
            let v = match found.as_slice() {
                [one] => Ok(one.id.clone()),
                [] => Err(format!("no account is named {name:?}")),
                many => Err(format!(
                    "{} accounts are named {name:?}; use an accountId column",
                    many.len()
                )),
            };
            self.accounts.insert(key.clone(), v);
        }
        Ok(Some(
            self.accounts[&key].clone().map_err(|m| (F::Account, m)),
        ))
    }

    /// The row's custom field cells as a patch; bad cells go to `errs`.
    fn custom_patch(
        &self,
        cells: &Cells<'_>,
        errs: &mut Vec<(F, String)>,
    ) -> Option<serde_json::Map<String, Value>> {
        let mut patch = serde_json::Map::new();
        for (f, v) in &cells.values {
            if let F::Custom(i) = f {
                let def = &self.defs[*i as usize];
                match custom::parse_cell(def, v) {
                    Ok(val) => {
                        patch.insert(def.key.clone(), val);
                    }
                    Err(m) => errs.push((*f, m)),
                }
            }
        }
        (!patch.is_empty()).then_some(patch)
    }

    fn contact_fields(
        &self,
        cells: &Cells<'_>,
        base: Option<&ContactRow>,
        errs: &mut Vec<(F, String)>,
    ) -> contacts::Fields {
        // A value the record already has keeps its kind (work, mobile, …);
        // new values are work addresses and numbers.
        let points = |f: F| {
            let known: Vec<ContactPoint> = base
                .map(|b| if f == F::Emails { &b.emails } else { &b.phones })
                .and_then(|s| serde_json::from_str(s).ok())
                .unwrap_or_default();
            cells.get(f).map(|s| {
                split_list(s)
                    .into_iter()
                    .map(|value| ContactPoint {
                        kind: known
                            .iter()
                            .find(|k| k.value.eq_ignore_ascii_case(&value))
                            .map_or(ContactPointKind::Work, |k| k.kind),
                        value,
                    })
                    .collect::<Vec<_>>()
            })
        };
        let consent = cells.get(F::Consent).and_then(|s| {
            enum_cell(
                s,
                ConsentState::from_text,
                "unknown, opted_in, opted_out",
                F::Consent,
                errs,
            )
            .map(|state| ConsentInput {
                state,
                source: cells.text(F::ConsentSource),
            })
        });
        contacts::Fields {
            first_name: cells.text(F::FirstName),
            last_name: cells.text(F::LastName),
            title: cells.text(F::Title).map(Some),
            emails: points(F::Emails),
            phones: points(F::Phones),
            preferred_channel: cells.get(F::PreferredChannel).map(|s| {
                enum_cell(
                    s,
                    Channel::from_text,
                    "email, phone, sms, in_person",
                    F::PreferredChannel,
                    errs,
                )
            }),
            language: cells.text(F::Language).map(Some),
            account_id: None,
            owner_id: None,
            consent,
            custom: self.custom_patch(cells, errs),
            creating: false,
            custom_defs: Some(self.defs.clone()),
            accounts_scope: None,
        }
    }

    fn account_fields(
        &self,
        cells: &Cells<'_>,
        base: Option<&AccountRow>,
        errs: &mut Vec<(F, String)>,
    ) -> AccountFields {
        let mut money = |amount: F, currency_col: F, old_currency: Option<&String>| {
            let s = cells.get(amount)?;
            match money_cell(s) {
                Ok((minor, cur)) => {
                    let currency = cur
                        .or_else(|| cells.get(currency_col).map(str::to_uppercase))
                        .or_else(|| old_currency.cloned());
                    match currency {
                        Some(currency) => Some(Some(Money {
                            amount_minor: minor,
                            currency,
                        })),
                        None => {
                            errs.push((
                                amount,
                                format!(
                                    "needs a currency: add a {} column or write e.g. \"{s} EUR\"",
                                    currency_col.name()
                                ),
                            ));
                            None
                        }
                    }
                }
                Err(m) => {
                    errs.push((amount, m));
                    None
                }
            }
        };
        let annual_revenue = money(
            F::AnnualRevenue,
            F::RevenueCurrency,
            base.and_then(|b| b.revenue_currency.as_ref()),
        );
        let credit_limit = money(
            F::CreditLimit,
            F::CreditCurrency,
            base.and_then(|b| b.credit_currency.as_ref()),
        );
        let address_cells = [F::Street, F::City, F::PostalCode, F::Region, F::Country];
        let old: Option<Address> = base
            .and_then(|b| b.address.as_deref())
            .and_then(|a| serde_json::from_str(a).ok());
        let address = address_cells
            .iter()
            .any(|f| cells.get(*f).is_some())
            .then(|| {
                let o = old.clone().unwrap_or_default();
                Address {
                    street: cells.text(F::Street).or(o.street),
                    city: cells.text(F::City).or(o.city),
                    postal_code: cells.text(F::PostalCode).or(o.postal_code),
                    region: cells.text(F::Region).or(o.region),
                    country: cells.text(F::Country).or(o.country),
                }
            })
            // The same address written differently is no change.
            .filter(|a| old.as_ref() != Some(a))
            .map(Some);
        AccountFields {
            name: cells.text(F::Name),
            industry: cells.text(F::Industry).map(Some),
            size_band: cells.get(F::SizeBand).map(|s| {
                enum_cell(
                    s,
                    SizeBand::from_text,
                    "micro, small, medium, large, enterprise",
                    F::SizeBand,
                    errs,
                )
            }),
            website: cells.text(F::Website).map(Some),
            phone: cells.text(F::Phone).map(Some),
            address,
            annual_revenue,
            credit_limit,
            lifecycle_stage: cells.get(F::LifecycleStage).and_then(|s| {
                enum_cell(
                    s,
                    LifecycleStage::from_text,
                    "prospect, active, at_risk, churned",
                    F::LifecycleStage,
                    errs,
                )
            }),
            rating: cells.text(F::Rating).map(Some),
            source: cells.text(F::Source).map(Some),
            notes: cells.text(F::Notes).map(Some),
            owner_id: None,
            custom: self.custom_patch(cells, errs),
            creating: false,
            custom_defs: Some(self.defs.clone()),
        }
    }

    /// Validates a batch and decides what each row does. Nothing is written.
    async fn prepare(&mut self, conn: &mut Conn<'_>, rows: &[Row]) -> Result<BatchResult> {
        let mut out = BatchResult::default();
        // Existing records the rows may match, in one query.
        let mut id_keys = Vec::new();
        let mut dup_keys = Vec::new();
        for row in rows {
            let cells = Cells::new(&self.cols, row);
            if let Some(id) = cells.get(F::Id) {
                id_keys.push(id.to_owned());
            }
            match self.entity {
                Entity::Contacts => {
                    if let Some(e) = cells
                        .get(F::Emails)
                        .and_then(|s| split_list(s).into_iter().next())
                    {
                        dup_keys.push(e.to_lowercase());
                    }
                }
                Entity::Accounts => {
                    if let Some(n) = cells.get(F::Name) {
                        dup_keys.push(n.to_lowercase());
                    }
                }
            }
        }
        let mut existing_contacts: HashMap<String, ContactRow> = HashMap::new();
        let mut existing_accounts: HashMap<String, AccountRow> = HashMap::new();
        let mut updatable: std::collections::HashSet<String> = Default::default();
        let check_dups = self.opts.duplicates != DuplicateHandling::Create || !id_keys.is_empty();
        if check_dups {
            match self.entity {
                Entity::Contacts => {
                    for r in
                        contact_repo::find_keys(conn, &self.read_scope, &id_keys, &dup_keys).await?
                    {
                        if let Some(k) = &r.email_key {
                            existing_contacts
                                .entry(format!("key:{k}"))
                                .or_insert_with(|| r.clone());
                        }
                        existing_contacts.insert(format!("id:{}", r.id), r);
                    }
                    if let Some(scope) = &self.update_scope {
                        for r in contact_repo::find_keys(conn, scope, &id_keys, &dup_keys).await? {
                            updatable.insert(r.id);
                        }
                    }
                }
                Entity::Accounts => {
                    for r in
                        account_repo::find_keys(conn, &self.read_scope, &id_keys, &dup_keys).await?
                    {
                        existing_accounts
                            .entry(format!("key:{}", r.name.to_lowercase()))
                            .or_insert_with(|| r.clone());
                        existing_accounts.insert(format!("id:{}", r.id), r);
                    }
                    if let Some(scope) = &self.update_scope {
                        for r in account_repo::find_keys(conn, scope, &id_keys, &dup_keys).await? {
                            updatable.insert(r.id);
                        }
                    }
                }
            }
        }
        // Keys created earlier in this batch, for duplicates within the file.
        let mut batch_keys: HashMap<String, usize> = HashMap::new();
        // Existing records already updated by a row of this batch.
        let mut batch_updates: HashMap<String, usize> = HashMap::new();
        for row in rows {
            out.counters.rows_done += 1;
            let cells = Cells::new(&self.cols, row);
            let mut errs: Vec<(F, String)> = Vec::new();
            let owner = match self.owner(conn, &cells).await? {
                Some(Ok(o)) => Some(o),
                Some(Err(e)) => {
                    errs.push(e);
                    None
                }
                None => None,
            };
            let id = cells.get(F::Id);
            let prepared = match self.entity {
                Entity::Contacts => {
                    let account = match self.account_ref(conn, &cells).await? {
                        Some(Ok(a)) => Some(a),
                        Some(Err(e)) => {
                            errs.push(e);
                            None
                        }
                        None => None,
                    };
                    let key = cells
                        .get(F::Emails)
                        .and_then(|s| split_list(s).into_iter().next())
                        .map(|e| e.to_lowercase());
                    let matched = match (id, &key) {
                        (Some(id), _) => match existing_contacts.get(&format!("id:{id}")) {
                            Some(r) => Some(r.clone()),
                            None => {
                                errs.push((F::Id, format!("no contact {id} in your scope")));
                                None
                            }
                        },
                        (None, Some(k)) if self.opts.duplicates != DuplicateHandling::Create => {
                            existing_contacts.get(&format!("key:{k}")).cloned()
                        }
                        _ => None,
                    };
                    let in_batch = key
                        .as_ref()
                        .filter(|_| {
                            self.opts.duplicates != DuplicateHandling::Create && id.is_none()
                        })
                        .and_then(|k| batch_keys.get(k).copied());
                    let mut fields = self.contact_fields(&cells, matched.as_ref(), &mut errs);
                    fields.creating = matched.is_none() && in_batch.is_none();
                    if !errs.is_empty() {
                        Err(errs)
                    } else if let Some(before) = matched {
                        if self.opts.duplicates == DuplicateHandling::Skip && id.is_none() {
                            Ok(Prepared::Skip)
                        } else if !updatable.contains(&before.id) {
                            Err(vec![(
                                F::Id,
                                format!("you may not update the existing contact {}", before.id),
                            )])
                        } else {
                            // A row further up may already update this record.
                            let pending = batch_updates.get(&before.id).copied();
                            let mut after = match pending.map(|i| &out.writes[i]) {
                                Some(Prepared::UpdateContact(_, a)) => (**a).clone(),
                                _ => before.clone(),
                            };
                            let r = contacts::apply(
                                self.app,
                                self.by,
                                conn,
                                &self.account_scope,
                                &mut after,
                                fields,
                            )
                            .await;
                            // Owner and account were checked above (cached).
                            if let Some(o) = owner {
                                after.owner_id = o;
                            }
                            if account.is_some() {
                                after.account_id = account;
                            }
                            match r {
                                Ok(())
                                    if pending.is_none()
                                        && contacts::snapshot(&after)
                                            == contacts::snapshot(&before) =>
                                {
                                    Ok(Prepared::Skip)
                                }
                                Ok(()) => {
                                    after.updated_at = ids::now();
                                    let p =
                                        Prepared::UpdateContact(Box::new(before), Box::new(after));
                                    match pending {
                                        Some(i) => {
                                            out.writes[i] = p;
                                            Ok(Prepared::Merged)
                                        }
                                        None => {
                                            if let Prepared::UpdateContact(b, _) = &p {
                                                batch_updates
                                                    .insert(b.id.clone(), out.writes.len());
                                            }
                                            Ok(p)
                                        }
                                    }
                                }
                                Err(Error::Validation(f)) => Err(self.field_errors(f)),
                                Err(e) => return Err(e),
                            }
                        }
                    } else if let Some(i) = in_batch {
                        match self.opts.duplicates {
                            DuplicateHandling::Skip => Ok(Prepared::Skip),
                            _ => {
                                // Update the record this file creates a few rows up.
                                let Prepared::NewContact(prev) = &out.writes[i] else {
                                    unreachable!("batch keys point at new contacts")
                                };
                                let mut after = (**prev).clone();
                                match contacts::apply(
                                    self.app,
                                    self.by,
                                    conn,
                                    &self.account_scope,
                                    &mut after,
                                    fields,
                                )
                                .await
                                {
                                    Ok(()) => {
                                        if let Some(o) = owner {
                                            after.owner_id = o;
                                        }
                                        if account.is_some() {
                                            after.account_id = account;
                                        }
                                        out.writes[i] = Prepared::NewContact(Box::new(after));
                                        Ok(Prepared::Merged)
                                    }
                                    Err(Error::Validation(f)) => Err(self.field_errors(f)),
                                    Err(e) => return Err(e),
                                }
                            }
                        }
                    } else {
                        let owner = owner.or_else(|| self.default_owner.clone());
                        match owner {
                            None => Err(vec![(F::OwnerId, "an owner is required (add an ownerId or ownerEmail column, or set a default owner)".to_owned())]),
                            Some(owner) => {
                                let mut row = new_contact(owner);
                                if fields.first_name.is_none() {
                                    errs.push((F::FirstName, "is required".into()));
                                }
                                if fields.last_name.is_none() {
                                    errs.push((F::LastName, "is required".into()));
                                }
                                let r = contacts::apply(self.app, self.by, conn, &self.account_scope, &mut row, fields).await;
                                row.account_id = account;
                                match r {
                                    Ok(()) if errs.is_empty() => {
                                        if let Some(k) = &key {
                                            batch_keys.insert(k.clone(), out.writes.len());
                                        }
                                        Ok(Prepared::NewContact(Box::new(row)))
                                    }
                                    Ok(()) => Err(errs),
                                    Err(Error::Validation(f)) => {
                                        let mut all = errs;
                                        all.extend(self.field_errors(f));
                                        Err(all)
                                    }
                                    Err(e) => return Err(e),
                                }
                            }
                        }
                    }
                }
                Entity::Accounts => {
                    let key = cells.get(F::Name).map(str::to_lowercase);
                    let matched = match (id, &key) {
                        (Some(id), _) => match existing_accounts.get(&format!("id:{id}")) {
                            Some(r) => Some(r.clone()),
                            None => {
                                errs.push((F::Id, format!("no account {id} in your scope")));
                                None
                            }
                        },
                        (None, Some(k)) if self.opts.duplicates != DuplicateHandling::Create => {
                            existing_accounts.get(&format!("key:{k}")).cloned()
                        }
                        _ => None,
                    };
                    let in_batch = key
                        .as_ref()
                        .filter(|_| {
                            self.opts.duplicates != DuplicateHandling::Create && id.is_none()
                        })
                        .and_then(|k| batch_keys.get(k).copied());
                    let mut fields = self.account_fields(&cells, matched.as_ref(), &mut errs);
                    fields.creating = matched.is_none() && in_batch.is_none();
                    if !errs.is_empty() {
                        Err(errs)
                    } else if let Some(before) = matched {
                        if self.opts.duplicates == DuplicateHandling::Skip && id.is_none() {
                            Ok(Prepared::Skip)
                        } else if !updatable.contains(&before.id) {
                            Err(vec![(
                                F::Id,
                                format!("you may not update the existing account {}", before.id),
                            )])
                        } else {
                            let pending = batch_updates.get(&before.id).copied();
                            let mut after = match pending.map(|i| &out.writes[i]) {
                                Some(Prepared::UpdateAccount(_, a)) => (**a).clone(),
                                _ => before.clone(),
                            };
                            let r =
                                account_service::apply(self.app, self.by, conn, &mut after, fields)
                                    .await;
                            if let Some(o) = owner {
                                after.owner_id = o;
                            }
                            match r {
                                Ok(())
                                    if pending.is_none()
                                        && account_service::snapshot(&after)
                                            == account_service::snapshot(&before) =>
                                {
                                    Ok(Prepared::Skip)
                                }
                                Ok(()) => {
                                    after.updated_at = ids::now();
                                    let p =
                                        Prepared::UpdateAccount(Box::new(before), Box::new(after));
                                    match pending {
                                        Some(i) => {
                                            out.writes[i] = p;
                                            Ok(Prepared::Merged)
                                        }
                                        None => {
                                            if let Prepared::UpdateAccount(b, _) = &p {
                                                batch_updates
                                                    .insert(b.id.clone(), out.writes.len());
                                            }
                                            Ok(p)
                                        }
                                    }
                                }
                                Err(Error::Validation(f)) => Err(self.field_errors(f)),
                                Err(e) => return Err(e),
                            }
                        }
                    } else if let Some(i) = in_batch {
                        match self.opts.duplicates {
                            DuplicateHandling::Skip => Ok(Prepared::Skip),
                            _ => {
                                let Prepared::NewAccount(prev) = &out.writes[i] else {
                                    unreachable!("batch keys point at new accounts")
                                };
                                let mut after = (**prev).clone();
                                match account_service::apply(
                                    self.app, self.by, conn, &mut after, fields,
                                )
                                .await
                                {
                                    Ok(()) => {
                                        if let Some(o) = owner {
                                            after.owner_id = o;
                                        }
                                        out.writes[i] = Prepared::NewAccount(Box::new(after));
                                        Ok(Prepared::Merged)
                                    }
                                    Err(Error::Validation(f)) => Err(self.field_errors(f)),
                                    Err(e) => return Err(e),
                                }
                            }
                        }
                    } else {
                        let owner = owner.or_else(|| self.default_owner.clone());
                        match owner {
                            None => Err(vec![(F::OwnerId, "an owner is required (add an ownerId or ownerEmail column, or set a default owner)".to_owned())]),
                            Some(owner) => {
                                let mut row = new_account(owner);
                                if fields.name.is_none() {
                                    Err(vec![(F::Name, "is required".to_owned())])
                                } else {
                                    match account_service::apply(self.app, self.by, conn, &mut row, fields).await {
                                        Ok(()) => {
                                            if let Some(k) = &key {
                                                batch_keys.insert(k.clone(), out.writes.len());
                                            }
                                            Ok(Prepared::NewAccount(Box::new(row)))
                                        }
                                        Err(Error::Validation(f)) => Err(self.field_errors(f)),
                                        Err(e) => return Err(e),
                                    }
                                }
                            }
                        }
                    }
                }
            };
            match prepared {
                Ok(Prepared::Skip) => out.counters.skipped += 1,
                Ok(Prepared::Merged) => out.counters.updated += 1,
                Ok(p) => {
                    match &p {
                        Prepared::NewContact(_) | Prepared::NewAccount(_) => {
                            out.counters.created += 1
                        }
                        _ => out.counters.updated += 1,
                    }
                    out.writes.push(p);
                }
                Err(errs) => {
                    out.counters.failed += 1;
                    for (f, message) in errs {
                        out.errors.push(RowError {
                            line: row.line as i64,
                            column: self.cols.header(f).unwrap_or(f.name()).to_owned(),
                            message,
                        });
                    }
                }
            }
        }
        Ok(out)
    }

    fn field_errors(&self, f: Vec<FieldError>) -> Vec<(F, String)> {
        f.into_iter()
            .map(|e| {
                let col = self.column_of(&e.field);
                let f = self
                    .cols
                    .fields
                    .iter()
                    .zip(&self.cols.headers)
                    .find(|(_, h)| **h == col)
                    .and_then(|(f, _)| *f)
                    .unwrap_or(F::Ignore);
                let message = if f == F::Ignore {
                    format!("{}: {}", e.field, e.message)
                } else {
                    e.message
                };
                (f, message)
            })
            .collect()
    }

    /// Writes a prepared batch in the caller's transaction.
    async fn write(&self, conn: &mut Conn<'_>, writes: Vec<Prepared>) -> Result<()> {
        let actor = self.by.actor();
        let mut changes = Vec::with_capacity(writes.len());
        let mut new_contacts = Vec::new();
        let mut new_accounts = Vec::new();
        for w in writes {
            match w {
                Prepared::NewContact(r) => new_contacts.push(*r),
                Prepared::NewAccount(r) => new_accounts.push(*r),
                Prepared::UpdateContact(before, after) => {
                    crm_core::entity::store::update_row::<contact_repo::Contacts>(
                        conn,
                        &after,
                        before.version,
                    )
                    .await?;
                    changes.push(Change {
                        topic: TOPIC,
                        entity_type: "Contact",
                        entity_id: after.id.clone(),
                        action: "updated",
                        before: Some(contacts::snapshot(&before)),
                        after: Some(contacts::snapshot(&after)),
                        owner_id: Some(after.owner_id.clone()),
                        team_id: None,
                    });
                }
                Prepared::UpdateAccount(before, after) => {
                    crm_core::entity::store::update_row::<account_repo::Accounts>(
                        conn,
                        &after,
                        before.version,
                    )
                    .await?;
                    if after.lifecycle_stage != before.lifecycle_stage {
                        account_repo::insert_stage_change(
                            conn,
                            &StageChangeRow {
                                id: ids::new_id("stg"),
                                account_id: after.id.clone(),
                                from_stage: Some(before.lifecycle_stage.clone()),
                                to_stage: after.lifecycle_stage.clone(),
                                changed_by: actor.id.clone(),
                                changed_at: ids::now(),
                            },
                        )
                        .await?;
                    }
                    changes.push(Change {
                        topic: TOPIC,
                        entity_type: "Account",
                        entity_id: after.id.clone(),
                        action: "updated",
                        before: Some(account_service::snapshot(&before)),
                        after: Some(account_service::snapshot(&after)),
                        owner_id: Some(after.owner_id.clone()),
                        team_id: None,
                    });
                }
                Prepared::Skip | Prepared::Merged => {}
            }
        }
        if !new_contacts.is_empty() {
            contact_repo::insert_many(conn, &new_contacts).await?;
            changes.extend(new_contacts.iter().map(|r| Change {
                topic: TOPIC,
                entity_type: "Contact",
                entity_id: r.id.clone(),
                action: "created",
                before: None,
                after: Some(contacts::snapshot(r)),
                owner_id: Some(r.owner_id.clone()),
                team_id: None,
            }));
        }
        if !new_accounts.is_empty() {
            account_repo::insert_many(conn, &new_accounts).await?;
            for r in &new_accounts {
                account_repo::insert_stage_change(
                    conn,
                    &StageChangeRow {
                        id: ids::new_id("stg"),
                        account_id: r.id.clone(),
                        from_stage: None,
                        to_stage: r.lifecycle_stage.clone(),
                        changed_by: actor.id.clone(),
                        changed_at: ids::now(),
                    },
                )
                .await?;
            }
            changes.extend(new_accounts.iter().map(|r| Change {
                topic: TOPIC,
                entity_type: "Account",
                entity_id: r.id.clone(),
                action: "created",
                before: None,
                after: Some(account_service::snapshot(r)),
                owner_id: Some(r.owner_id.clone()),
                team_id: None,
            }));
        }
        change::record_many(conn, &actor, &changes).await
    }
}

fn new_contact(owner: String) -> ContactRow {
    let now = ids::now();
    ContactRow {
        id: ids::new_id("con"),
        first_name: String::new(),
        last_name: String::new(),
        title: None,
        emails: "[]".into(),
        phones: "[]".into(),
        search_text: String::new(),
        preferred_channel: None,
        language: None,
        account_id: None,
        owner_id: owner,
        consent_state: ConsentState::Unknown.as_text(),
        consent_at: None,
        consent_source: None,
        created_at: now,
        updated_at: now,
        version: 1,
        deleted_at: None,
        deleted_by: None,
        custom: "{}".into(),
        email_key: None,
    }
}

fn new_account(owner: String) -> AccountRow {
    let now = ids::now();
    AccountRow {
        id: ids::new_id("acc"),
        name: String::new(),
        industry: None,
        size_band: None,
        website: None,
        phone: None,
        address: None,
        annual_revenue: None,
        revenue_currency: None,
        credit_limit: None,
        credit_currency: None,
        lifecycle_stage: LifecycleStage::Prospect.as_text(),
        rating: None,
        source: None,
        notes: None,
        owner_id: owner,
        created_at: now,
        updated_at: now,
        version: 1,
        deleted_at: None,
        deleted_by: None,
        custom: "{}".into(),
    }
}

/// Progress as an import goes: counters, bytes read, file size.
pub type OnProgress<'a> = &'a (dyn Fn(&Counters, u64, u64) + Send + Sync);

/// Checks that the caller may import `entity` with these options, before
/// any file is read: create (and update, when updating duplicates).
pub fn check_allowed(
    app: &App,
    by: &Principal,
    entity: Entity,
    opts: &ImportOptions,
) -> Result<()> {
    let ty = entity.type_name();
    access::require_all(app, by, [ty.to_owned()], "create")?;
    if opts.duplicates == DuplicateHandling::Update && !access::has_scope(app, by, ty, "update") {
        return Err(by.refusal(
            &format!("not allowed to update {ty} (duplicates: update)"),
            vec![ty.to_owned()],
        ));
    }
    Ok(())
}

/// Checks the `defaultOwnerId` option as an API write of `ownerId`: the
/// importer must be allowed to assign owners and see that user.
async fn check_default_owner(app: &App, by: &Principal, entity: Entity, id: &str) -> Result<()> {
    access::require_assignable_owner(app, by, entity.type_name(), id)
        .await
        .map_err(|e| match e {
            Error::Validation(_) => Error::invalid("defaultOwnerId", "no such active user"),
            other => other,
        })
}

/// Imports `path` as job `job_id` (already created); returns the outcome.
pub async fn run(
    app: &App,
    by: &Principal,
    entity: Entity,
    path: &Path,
    opts: &ImportOptions,
    job_id: &str,
    on_progress: OnProgress<'_>,
) -> Result<Outcome> {
    check_allowed(app, by, entity, opts)?;
    let ty = entity.type_name();
    let mut source = CsvSource::open(path, opts.encoding.into())?;
    let defs = {
        let mut c = app.db.conn().await?;
        std::sync::Arc::new(custom::definitions(&mut c.conn(), entity.type_name()).await?)
    };
    let cols = Columns::resolve(entity, &source.headers, &opts.mapping, &defs)?;
    // Field rules: every column must be a field the caller may write.
    access::require_all(
        app,
        by,
        cols.used()
            .filter_map(|f| match f {
                F::Custom(i) => Some(format!("custom.{}", defs[i as usize].key)),
                other => other.policy_field().map(str::to_owned),
            })
            .map(|f| format!("{ty}.{f}")),
        "write",
    )?;
    let read_scope = row_filter_for(app, by, ty, "read").await?;
    let update_scope = match opts.duplicates {
        DuplicateHandling::Update => Some(row_filter_for(app, by, ty, "update").await?),
        _ => None,
    };
    // An account column needs a scope to look accounts up in.
    let account_scope = if cols.header(F::AccountId).is_some() || cols.header(F::Account).is_some()
    {
        row_filter_for(app, by, "Account", "read").await?
    } else {
        RowFilter::Nothing
    };
    let default_owner = match &opts.default_owner_id {
        Some(id) => {
            check_default_owner(app, by, entity, id).await?;
            Some(id.0.clone())
        }
        None => by.user_id().map(str::to_owned),
    };
    let mut run = Run {
        app,
        by,
        entity,
        opts,
        cols,
        read_scope,
        update_scope,
        account_scope,
        default_owner,
        owners: HashMap::new(),
        accounts: HashMap::new(),
        defs,
    };
    let write_per_batch = !opts.dry_run && opts.mode == ImportMode::SkipBadRows;
    // Pass 1: validate (and, in skip-bad-rows mode, write each batch).
    let mut total = Counters::default();
    let mut cancelled = false;
    let mut batches = 0;
    loop {
        let (rows, unreadable) = next_batch(&mut source);
        if rows.is_empty() && unreadable.is_empty() {
            break;
        }
        batches += 1;
        let mut result = if write_per_batch {
            let mut tx = app.db.begin().await?;
            let mut result = run.prepare(&mut tx.conn(), &rows).await?;
            let writes = std::mem::take(&mut result.writes);
            run.write(&mut tx.conn(), writes).await?;
            refresh_stats(&mut tx.conn(), entity, batches).await?;
            app.commit(tx).await?;
            result
        } else {
            let mut c = app.db.conn().await?;
            run.prepare(&mut c.conn(), &rows).await?
        };
        for (line, message) in unreadable {
            result.counters.rows_done += 1;
            result.counters.failed += 1;
            result.errors.push(RowError {
                line: line as i64,
                column: String::new(),
                message,
            });
        }
        add(&mut total, &result.counters);
        if !result.errors.is_empty() {
            let mut tx = app.db.begin().await?;
            jobs::add_errors(&mut tx.conn(), job_id, &result.errors).await?;
            tx.commit().await?;
        }
        on_progress(&total, source.position(), source.size);
        if jobs::progress(&app.db, job_id, &total).await? {
            cancelled = true;
            break;
        }
    }
    let written = |n: &Counters| n.created + n.updated;
    if cancelled {
        let message = if write_per_batch {
            format!(
                "cancelled after {} rows; the {} rows written before stay",
                total.rows_done,
                written(&total)
            )
        } else {
            format!(
                "cancelled after {} rows; nothing was written",
                total.rows_done
            )
        };
        if !write_per_batch {
            total = Counters {
                rows_done: total.rows_done,
                failed: total.failed,
                ..Counters::default()
            };
        }
        return Ok(Outcome {
            status: JobStatus::Cancelled,
            counters: total,
            message: Some(message),
            result_path: None,
        });
    }
    if opts.dry_run {
        let message = format!(
            "dry run: {} rows checked; would create {}, update {}, skip {}; {} bad rows; nothing was written",
            total.rows_done, total.created, total.updated, total.skipped, total.failed
        );
        return Ok(Outcome {
            status: JobStatus::Succeeded,
            counters: Counters {
                rows_done: total.rows_done,
                skipped: total.rows_done - total.failed,
                failed: total.failed,
                ..Counters::default()
            },
            message: Some(message),
            result_path: None,
        });
    }
    if write_per_batch {
        let message = format!(
            "{} rows: {} created, {} updated, {} skipped, {} failed",
            total.rows_done, total.created, total.updated, total.skipped, total.failed
        );
        return Ok(Outcome {
            status: JobStatus::Succeeded,
            counters: total,
            message: Some(message),
            result_path: None,
        });
    }
    if total.failed > 0 {
        return Ok(Outcome {
            status: JobStatus::Failed,
            counters: Counters {
                rows_done: total.rows_done,
                failed: total.failed,
                ..Counters::default()
            },
            message: Some(format!(
                "{} of {} rows have errors; nothing was imported (fix them, or import with skip-bad-rows)",
                total.failed, total.rows_done
            )),
            result_path: None,
        });
    }
    // Pass 2 (all-or-nothing): every row in one transaction.
    let mut source = CsvSource::open(path, opts.encoding.into())?;
    run.owners.clear();
    run.accounts.clear();
    let mut tx = app.db.begin().await?;
    let mut done = Counters::default();
    // SQLite has one writer: progress is reported at the end. PostgreSQL
    // reports as it goes, over a second connection.
    let live = matches!(app.db.backend(), crm_core::db::Backend::Postgres);
    let mut batches = 0;
    loop {
        let (rows, unreadable) = next_batch(&mut source);
        if rows.is_empty() && unreadable.is_empty() {
            break;
        }
        let mut result = run.prepare(&mut tx.conn(), &rows).await?;
        if result.counters.failed > 0 || !unreadable.is_empty() {
            // The data changed since validation (e.g. an owner was
            // deactivated): nothing is written.
            drop(tx);
            let e = result.errors.first();
            return Err(Error::Conflict(format!(
                "the data changed while importing{}; nothing was imported",
                e.map(|e| format!(" (line {}: {} {})", e.line, e.column, e.message))
                    .unwrap_or_default()
            )));
        }
        let writes = std::mem::take(&mut result.writes);
        run.write(&mut tx.conn(), writes).await?;
        batches += 1;
        refresh_stats(&mut tx.conn(), entity, batches).await?;
        add(&mut done, &result.counters);
        on_progress(&done, source.position(), source.size);
        if live && jobs::progress(&app.db, job_id, &done).await? {
            drop(tx);
            return Ok(Outcome {
                status: JobStatus::Cancelled,
                counters: Counters {
                    rows_done: done.rows_done,
                    ..Counters::default()
                },
                message: Some(format!(
                    "cancelled after {} rows; nothing was written",
                    done.rows_done
                )),
                result_path: None,
            });
        }
    }
    app.commit(tx).await?;
    Ok(Outcome {
        status: JobStatus::Succeeded,
        counters: done,
        message: Some(format!(
            "{} rows: {} created, {} updated, {} skipped",
            done.rows_done, done.created, done.updated, done.skipped
        )),
        result_path: None,
    })
}

/// PostgreSQL plans the duplicate lookups with the statistics it has, and
/// a table that grows from empty during a bulk load would keep plans made
/// for an empty table (a full scan per batch). The statistics are refreshed
/// each time the import has grown the table tenfold.
async fn refresh_stats(conn: &mut Conn<'_>, entity: Entity, batch: usize) -> Result<()> {
    if let Conn::Pg(c) = conn
        && [1, 10, 100, 1_000, 10_000].contains(&batch)
    {
        let table = match entity {
            Entity::Accounts => "accounts",
            Entity::Contacts => "contacts",
        };
        diesel_async::RunQueryDsl::execute(diesel::sql_query(format!("ANALYZE {table}")), &mut **c)
            .await?;
    }
    Ok(())
}

fn add(total: &mut Counters, n: &Counters) {
    total.rows_done += n.rows_done;
    total.created += n.created;
    total.updated += n.updated;
    total.skipped += n.skipped;
    total.failed += n.failed;
}

/// Reads up to [`BATCH`] rows: the good ones and the unreadable ones.
fn next_batch(source: &mut CsvSource) -> (Vec<Row>, Vec<(u64, String)>) {
    let mut rows = Vec::with_capacity(BATCH);
    let mut bad = Vec::new();
    while rows.len() + bad.len() < BATCH {
        match source.next_row() {
            None => break,
            Some(Ok(r)) => rows.push(r),
            Some(Err(e)) => bad.push(e),
        }
    }
    (rows, bad)
}

/// Starts an import job in the background from an uploaded file, which is
/// copied into the job's directory and deleted when the job ends.
pub async fn start_job(
    app: &App,
    by: &Principal,
    entity: Entity,
    mut upload: std::fs::File,
    file_name: Option<String>,
    opts: ImportOptions,
) -> Result<jobs::JobRow> {
    check_allowed(app, by, entity, &opts)?;
    if let Some(id) = &opts.default_owner_id {
        check_default_owner(app, by, entity, id).await?;
    }
    let params = serde_json::to_value(&opts).unwrap_or(Value::Null);
    let job = jobs::create(&app.db, by, entity.job_kind(), &params, file_name).await?;
    let dir = jobs::dir(app, &job.id);
    let input = dir.join("input.csv");
    let target = input.clone();
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        use std::io::Seek;
        std::fs::create_dir_all(&dir)?;
        upload.rewind()?;
        let mut out = std::fs::File::create(&target)?;
        std::io::copy(&mut upload, &mut out)?;
        out.sync_all()
    })
    .await
    .map_err(|e| Error::Internal(format!("storing the upload: {e}")))?
    .map_err(|e| Error::Internal(format!("storing the upload: {e}")))?;
    let (app2, by2, id) = (app.clone(), by.clone(), job.id.clone());
    jobs::spawn(app, job.id.clone(), async move {
        let r = run(&app2, &by2, entity, &input, &opts, &id, &|_, _, _| {}).await;
        // The upload holds personal data: keep it no longer than needed.
        let _ = std::fs::remove_file(&input);
        r
    });
    Ok(job)
}

/// Import mutations.
#[derive(Default)]
pub struct ImportMutation;

#[async_graphql::Object]
impl ImportMutation {
    /// Starts importing accounts from a CSV file (GraphQL multipart upload).
    /// Follow it with `importJob(id)` or the `importProgress` subscription.
    async fn import_accounts(
        &self,
        ctx: &async_graphql::Context<'_>,
        file: async_graphql::Upload,
        options: Option<ImportOptions>,
    ) -> Result<jobs::Job> {
        start_upload(ctx, Entity::Accounts, file, options).await
    }

    /// Starts importing contacts from a CSV file (GraphQL multipart upload).
    async fn import_contacts(
        &self,
        ctx: &async_graphql::Context<'_>,
        file: async_graphql::Upload,
        options: Option<ImportOptions>,
    ) -> Result<jobs::Job> {
        start_upload(ctx, Entity::Contacts, file, options).await
    }
}

async fn start_upload(
    ctx: &async_graphql::Context<'_>,
    entity: Entity,
    file: async_graphql::Upload,
    options: Option<ImportOptions>,
) -> Result<jobs::Job> {
    let app = ctx.data_unchecked::<App>();
    let by = crm_core::access::principal(ctx);
    let upload = file
        .value(ctx)
        .map_err(|e| Error::invalid("file", format!("cannot read the upload: {e}")))?;
    let name = Some(upload.filename.clone()).filter(|n| !n.is_empty());
    let job = start_job(
        app,
        by,
        entity,
        upload.content,
        name,
        options.unwrap_or_default(),
    )
    .await?;
    Ok(job.into())
}
