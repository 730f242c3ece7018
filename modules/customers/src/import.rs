//! Importing accounts and contacts from CSV files: what each entity
//! declares to the kit's import ([`crm_core::entity::import`]): its columns
//! with their header aliases (English and Chinese), duplicate key, and how
//! a row's cells become its fields (contact points, money, address parts,
//! the account a contact belongs to). Batches, modes, duplicates, owners,
//! custom fields, the error report and jobs are the kit's.

use std::collections::HashMap;

use crm_core::access::{Principal, RowFilter, row_filter_for};
use crm_core::app::App;
use crm_core::db::Conn;
use crm_core::entity::import::{
    self as kit, CellErrors, Cells, DuplicateKey, ImportColumn as C, Importable, RowCtx, RowInput,
};
use crm_core::error::Result;
use crm_core::ids;
use crm_core::jobs;
use serde_json::Value;

pub use crm_core::entity::import::{
    ColumnMapping, DuplicateHandling, FileEncoding, ImportMode, ImportOptions,
};

use crate::accounts::repo::{self as account_repo, AccountRow, Accounts};
use crate::accounts::service::AccountFields;
use crate::contacts::repo::{ContactRow, Contacts};
use crate::contacts::{self, ConsentInput};
use crate::values::{
    Address, Channel, ConsentState, ContactPoint, ContactPointKind, LifecycleStage, Money, SizeBand,
};

/// Splits a multi-value cell (`a@x.org; b@y.org`).
pub fn split_list(s: &str) -> Vec<String> {
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
    field: &'static str,
    errs: &mut CellErrors,
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
pub fn money_cell(s: &str) -> std::result::Result<(i64, Option<String>), String> {
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

/// What a contact import keeps across rows: the accounts a contact may
/// link to, and account references already looked up.
pub struct ContactSession {
    account_scope: RowFilter,
    /// `id:…` / `name:…` (lower case) -> account id or the problem.
    accounts: HashMap<String, std::result::Result<String, String>>,
}

impl ContactSession {
    /// The account a row names (by id or by name), if any.
    async fn account_ref(
        &mut self,
        conn: &mut Conn<'_>,
        cells: &Cells<'_>,
    ) -> Result<Option<std::result::Result<String, (&'static str, String)>>> {
        if let Some(id) = cells.get("accountId") {
            let key = format!("id:{id}");
            if !self.accounts.contains_key(&key) {
                let ok = ids::check(id, "acc", "accountId").is_ok()
                    && crm_core::entity::store::get::<Accounts>(conn, &self.account_scope, id)
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
                self.accounts[&key].clone().map_err(|m| ("accountId", m)),
            ));
        }
        let Some(name) = cells.get("account") else {
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
            self.accounts[&key].clone().map_err(|m| ("account", m)),
        ))
    }
}

impl Importable for Contacts {
    const COLUMNS: &'static [C] = &[
        C::new("firstName", &["givenname", "first", "forename", "名"]),
        C::new("lastName", &["surname", "familyname", "last", "姓"]),
        C::new("title", &["jobtitle", "position", "职位", "职务"]),
        C::new(
            "emails",
            &[
                "email",
                "emailaddress",
                "mail",
                "邮箱",
                "电子邮件",
                "电子邮箱",
            ],
        ),
        C::new(
            "phones",
            &[
                "phone",
                "phonenumber",
                "telephone",
                "tel",
                "mobile",
                "电话",
                "手机",
            ],
        ),
        C::new("preferredChannel", &["channel"]),
        C::new("language", &["lang", "语言"]),
        C::new("accountId", &[]),
        C::new(
            "account",
            &[
                "accountname",
                "company",
                "companyname",
                "organisation",
                "organization",
                "公司",
                "单位",
            ],
        )
        .writes("accountId"),
        C::new("consent", &["consentstate"]),
        C::new("consentSource", &[]).writes("consent"),
    ];
    const REQUIRED: &'static [&'static str] = &["firstName", "lastName"];
    const KEY: Option<DuplicateKey> = Some(DuplicateKey {
        column: "email_key",
        lower: false,
    });
    const JOB_KIND: &'static str = "import.contacts";
    type Session = ContactSession;

    async fn session(app: &App, by: &Principal, used: &[&'static str]) -> Result<ContactSession> {
        // An account column needs a scope to look accounts up in.
        let account_scope = if used.contains(&"accountId") || used.contains(&"account") {
            row_filter_for(app, by, "Account", "read").await?
        } else {
            RowFilter::Nothing
        };
        Ok(ContactSession {
            account_scope,
            accounts: HashMap::new(),
        })
    }

    /// The first e-mail address, in lower case.
    fn key(cells: &Cells<'_>) -> Option<String> {
        cells
            .get("emails")
            .and_then(|s| split_list(s).into_iter().next())
            .map(|e| e.to_lowercase())
    }

    async fn fields(
        session: &mut ContactSession,
        conn: &mut Conn<'_>,
        cells: &Cells<'_>,
        base: Option<&ContactRow>,
        ctx: RowCtx,
        errs: &mut CellErrors,
    ) -> Result<RowInput<contacts::Fields>> {
        let account = match session.account_ref(conn, cells).await? {
            Some(Ok(a)) => Some(a),
            Some(Err(e)) => {
                errs.push(e);
                None
            }
            None => None,
        };
        // A value the record already has keeps its kind (work, mobile, …);
        // new values are work addresses and numbers.
        let points = |api: &str| {
            let known: Vec<ContactPoint> = base
                .map(|b| {
                    if api == "emails" {
                        &b.emails
                    } else {
                        &b.phones
                    }
                })
                .and_then(|s| serde_json::from_str(s).ok())
                .unwrap_or_default();
            cells.get(api).map(|s| {
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
        let consent = cells.get("consent").and_then(|s| {
            enum_cell(
                s,
                ConsentState::from_text,
                "unknown, opted_in, opted_out",
                "consent",
                errs,
            )
            .map(|state| ConsentInput {
                state,
                source: cells.text("consentSource"),
            })
        });
        let fields = contacts::Fields {
            first_name: cells.text("firstName"),
            last_name: cells.text("lastName"),
            title: cells.text("title").map(Some),
            emails: points("emails"),
            phones: points("phones"),
            preferred_channel: cells.get("preferredChannel").map(|s| {
                enum_cell(
                    s,
                    Channel::from_text,
                    "email, phone, sms, in_person",
                    "preferredChannel",
                    errs,
                )
            }),
            language: cells.text("language").map(Some),
            account_id: None,
            owner_id: None,
            consent,
            custom: ctx.custom,
            creating: ctx.creating,
            custom_defs: Some(ctx.defs),
            accounts_scope: None,
        };
        // The account was checked above (cached per import).
        Ok(RowInput {
            fields,
            set: account
                .map(|a| vec![("account_id", Value::from(a))])
                .unwrap_or_default(),
        })
    }
}

impl Importable for Accounts {
    const COLUMNS: &'static [C] = &[
        C::new(
            "name",
            &[
                "accountname",
                "company",
                "companyname",
                "公司",
                "公司名称",
                "名称",
            ],
        ),
        C::new("industry", &["行业"]),
        C::new("sizeBand", &["size"]),
        C::new("website", &["web", "url", "网站"]),
        C::new("phone", &["telephone", "tel", "电话"]),
        C::new("street", &["address", "addressstreet", "地址"]).writes("address"),
        C::new("city", &["城市"]).writes("address"),
        C::new("postalCode", &["zip", "zipcode", "postcode", "邮编"]).writes("address"),
        C::new("region", &["state", "province", "省份"]).writes("address"),
        C::new("country", &["国家"]).writes("address"),
        C::new("annualRevenue", &["revenue"]),
        C::new("revenueCurrency", &[]).writes("annualRevenue"),
        C::new("creditLimit", &[]),
        C::new("creditCurrency", &[]).writes("creditLimit"),
        C::new("lifecycleStage", &["stage"]),
        C::new("rating", &[]),
        C::new("source", &["leadsource"]),
        C::new("notes", &["note", "备注"]),
    ];
    const IGNORED: &'static [&'static str] = &["addressjson"];
    const REQUIRED: &'static [&'static str] = &["name"];
    const KEY: Option<DuplicateKey> = Some(DuplicateKey {
        column: "name",
        lower: true,
    });
    const JOB_KIND: &'static str = "import.accounts";
    type Session = ();

    async fn session(_app: &App, _by: &Principal, _used: &[&'static str]) -> Result<()> {
        Ok(())
    }

    /// The name, in lower case.
    fn key(cells: &Cells<'_>) -> Option<String> {
        cells.get("name").map(str::to_lowercase)
    }

    async fn fields(
        _session: &mut (),
        _conn: &mut Conn<'_>,
        cells: &Cells<'_>,
        base: Option<&AccountRow>,
        ctx: RowCtx,
        errs: &mut CellErrors,
    ) -> Result<RowInput<AccountFields>> {
        let mut money = |amount: &'static str,
                         currency_col: &'static str,
                         old_currency: Option<&String>| {
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
                                        "needs a currency: add a {currency_col} column or write e.g. \"{s} EUR\""
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
            "annualRevenue",
            "revenueCurrency",
            base.and_then(|b| b.revenue_currency.as_ref()),
        );
        let credit_limit = money(
            "creditLimit",
            "creditCurrency",
            base.and_then(|b| b.credit_currency.as_ref()),
        );
        let old: Option<Address> = base
            .and_then(|b| b.address.as_deref())
            .and_then(|a| serde_json::from_str(a).ok());
        let address = ["street", "city", "postalCode", "region", "country"]
            .iter()
            .any(|f| cells.get(f).is_some())
            .then(|| {
                let o = old.clone().unwrap_or_default();
                Address {
                    street: cells.text("street").or(o.street),
                    city: cells.text("city").or(o.city),
                    postal_code: cells.text("postalCode").or(o.postal_code),
                    region: cells.text("region").or(o.region),
                    country: cells.text("country").or(o.country),
                }
            })
            // The same address written differently is no change.
            .filter(|a| old.as_ref() != Some(a))
            .map(Some);
        let fields = AccountFields {
            name: cells.text("name"),
            industry: cells.text("industry").map(Some),
            size_band: cells.get("sizeBand").map(|s| {
                enum_cell(
                    s,
                    SizeBand::from_text,
                    "micro, small, medium, large, enterprise",
                    "sizeBand",
                    errs,
                )
            }),
            website: cells.text("website").map(Some),
            phone: cells.text("phone").map(Some),
            address,
            annual_revenue,
            credit_limit,
            lifecycle_stage: cells.get("lifecycleStage").and_then(|s| {
                enum_cell(
                    s,
                    LifecycleStage::from_text,
                    "prospect, active, at_risk, churned",
                    "lifecycleStage",
                    errs,
                )
            }),
            rating: cells.text("rating").map(Some),
            source: cells.text("source").map(Some),
            notes: cells.text("notes").map(Some),
            owner_id: None,
            custom: ctx.custom,
            creating: ctx.creating,
            custom_defs: Some(ctx.defs),
        };
        Ok(RowInput {
            fields,
            set: Vec::new(),
        })
    }
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
        kit::start_upload::<Accounts>(ctx, file, options).await
    }

    /// Starts importing contacts from a CSV file (GraphQL multipart upload).
    async fn import_contacts(
        &self,
        ctx: &async_graphql::Context<'_>,
        file: async_graphql::Upload,
        options: Option<ImportOptions>,
    ) -> Result<jobs::Job> {
        kit::start_upload::<Contacts>(ctx, file, options).await
    }
}
