//! Demo and benchmark data: a realistic, deterministic customer base for an
//! empty database, written in large batches straight to the tables (no
//! events or audit entries: this is seeding, not business activity).

use chrono::{Duration, NaiveDateTime};
use crm_core::app::App;
use crm_core::db_run;
use crm_core::error::{Error, Result};
use crm_core::schema::{account_tags, accounts, activities, contact_tags, contacts, purchases};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::accounts::repo::AccountRow;
use crate::activities::repo::ActivityRow;
use crate::contacts::repo::ContactRow;
use crate::purchases::PurchaseRow;

/// How much to generate.
#[derive(Clone, Debug)]
pub struct DemoSize {
    /// Accounts.
    pub accounts: usize,
    /// Contacts (spread over the accounts).
    pub contacts: usize,
    /// Timeline entries (on contacts and accounts).
    pub activities: usize,
    /// Purchases (on accounts).
    pub purchases: usize,
    /// Random seed: the same seed gives the same data.
    pub seed: u64,
}

/// Rows per INSERT statement.
const BATCH: usize = 1000;

const PREFIX: &[&str] = &[
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Stark",
    "Wayne",
    "Wonka",
    "Tyrell",
    "Cyberdyne",
    "Soylent",
    "Hooli",
    "Vandelay",
    "Nakatomi",
    "Gringotts",
    "Oscorp",
    "Monarch",
    "Aperture",
    "Black Mesa",
    "Dunder",
    "Pied Piper",
    "Massive",
    "Blue Sun",
];
const SUFFIX: &[&str] = &[
    "GmbH",
    "AG",
    "Ltd",
    "Inc",
    "SA",
    "BV",
    "Group",
    "Holdings",
    "Partners",
    "Labs",
    "Systems",
    "Logistics",
];
const INDUSTRY: &[&str] = &[
    "retail",
    "energy",
    "manufacturing",
    "software",
    "finance",
    "health",
    "logistics",
    "media",
];
const CITY: &[(&str, &str)] = &[
    ("Berlin", "DE"),
    ("Munich", "DE"),
    ("London", "GB"),
    ("Paris", "FR"),
    ("Madrid", "ES"),
    ("Vienna", "AT"),
    ("Zurich", "CH"),
    ("Shanghai", "CN"),
];
const FIRST: &[&str] = &[
    "Anna", "Ben", "Chen", "Dana", "Emil", "Fatima", "Greta", "Hugo", "Ines", "Jonas", "Kim",
    "Lena", "Mehmet", "Nora", "Oskar", "Priya", "Quentin", "Rosa", "Sven", "Tara", "Uwe", "Vera",
    "Wei", "Yusuf", "Zoe",
];
const LAST: &[&str] = &[
    "Adler", "Becker", "Costa", "Dubois", "Engel", "Fischer", "García", "Hoffmann", "Ivanova",
    "Jensen", "Kowalski", "Li", "Müller", "Novak", "Okafor", "Petrov", "Rossi", "Schmidt",
    "Tanaka", "Weber", "Yilmaz", "Zhang",
];
const STAGES: &[&str] = &[
    "prospect", "active", "active", "active", "at_risk", "churned",
];
const KINDS: &[&str] = &["call", "email", "meeting", "note", "task"];

/// Makes a v7 id whose time part is `base + n` ms, so generated rows sort in
/// creation order and the same seed gives the same ids.
fn id(prefix: &str, rng: &mut StdRng, base_ms: u64, n: usize) -> String {
    crm_core::ids::id_at(prefix, base_ms + n as u64, rng.r#gen())
}

/// A name as the ASCII an email address's local part is expected to hold:
/// lower case, accents folded (`García` → `garcia`, `Müller` → `mueller`),
/// anything else non-ASCII left out. The contact keeps the name as written.
fn ascii_local_part(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.to_lowercase().chars() {
        let folded = match c {
            'à' | 'á' | 'â' | 'ã' | 'å' | 'ā' | 'ą' => "a",
            'ä' | 'æ' => "ae",
            'ç' | 'ć' | 'č' => "c",
            'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ę' | 'ě' => "e",
            'ì' | 'í' | 'î' | 'ï' | 'ı' => "i",
            'ł' => "l",
            'ñ' | 'ń' | 'ň' => "n",
            'ò' | 'ó' | 'ô' | 'õ' | 'ø' | 'ō' => "o",
            'ö' | 'œ' => "oe",
            'ř' => "r",
            'ś' | 'š' | 'ş' => "s",
            'ß' => "ss",
            'ù' | 'ú' | 'û' | 'ū' | 'ů' => "u",
            'ü' => "ue",
            'ý' | 'ÿ' => "y",
            'ź' | 'ż' | 'ž' => "z",
            c if c.is_ascii_alphanumeric() || c == '-' => {
                out.push(c);
                continue;
            }
            _ => continue,
        };
        out.push_str(folded);
    }
    out
}

fn pick<'a>(rng: &mut StdRng, list: &'a [&'a str]) -> &'a str {
    list[rng.gen_range(0..list.len())]
}

/// Inserts rows in one transaction: one multi-row INSERT on PostgreSQL,
/// row by row on SQLite (whose diesel backend has no multi-row insert with
/// optional values; inside one transaction that is still fast).
macro_rules! insert_rows {
    ($app:expr, $table:expr, $rows:expr) => {{
        let mut tx = $app.db.begin().await?;
        crm_core::insert_all!(&mut tx.conn(), $table, $rows);
        tx.commit().await?;
    }};
}

/// Fills the customer tables. `owners` are the users records are spread
/// over; `progress(stage, done, total)` is called as batches land.
pub async fn generate(
    app: &App,
    size: &DemoSize,
    owners: &[String],
    tag_ids: &[String],
    progress: &(dyn Fn(&str, usize, usize) + Sync),
) -> Result<()> {
    if owners.is_empty() {
        return Err(Error::invalid("owners", "need at least one owner"));
    }
    {
        let mut c = app.db.conn().await?;
        let mut conn = c.conn();
        let existing: i64 = db_run!(&mut conn, |c| accounts::table.count().get_result(c).await)?;
        if existing > 0 {
            return Err(Error::Conflict(format!(
                "the database already has {existing} accounts; demo data goes into an empty one"
            )));
        }
    }
    let mut rng = StdRng::seed_from_u64(size.seed);
    // 2026-01-01T00:00:00Z, a fixed origin so the data set is reproducible.
    let base_ms: u64 = 1_767_225_600_000;
    let origin = NaiveDateTime::parse_from_str("2026-01-01 00:00:00", "%Y-%m-%d %H:%M:%S")
        .expect("valid date");
    let at = |ms: i64| origin - Duration::milliseconds(ms);

    let mut account_rows = Vec::with_capacity(size.accounts);
    for n in 0..size.accounts {
        let name = format!(
            "{} {} {}",
            pick(&mut rng, PREFIX),
            pick(&mut rng, SUFFIX),
            n + 1
        );
        let (city, country) = CITY[rng.gen_range(0..CITY.len())];
        let created = at(rng.gen_range(0..31_536_000_000));
        account_rows.push(AccountRow {
            id: id("acc", &mut rng, base_ms, n),
            name,
            industry: Some(pick(&mut rng, INDUSTRY).to_owned()),
            size_band: Some(["micro", "small", "medium", "large", "enterprise"][rng.gen_range(0..5)].to_owned()),
            website: Some(format!("https://www.example-{}.com", n + 1)),
            phone: Some(format!("+4930{:07}", rng.gen_range(1_000_000..9_999_999))),
            address: Some(serde_json::json!({"street": format!("{} Street {}", pick(&mut rng, LAST), rng.gen_range(1..200)), "city": city, "postalCode": format!("{:05}", rng.gen_range(10000..99999)), "country": country}).to_string()),
            annual_revenue: Some(rng.gen_range(100_000..500_000_000) * 100),
            revenue_currency: Some("EUR".into()),
            credit_limit: Some(rng.gen_range(1_000..1_000_000) * 100),
            credit_currency: Some("EUR".into()),
            lifecycle_stage: pick(&mut rng, STAGES).to_owned(),
            rating: Some(["A", "B", "C"][rng.gen_range(0..3)].to_owned()),
            source: Some(["web", "referral", "fair", "cold call"][rng.gen_range(0..4)].to_owned()),
            notes: None,
            owner_id: owners[n % owners.len()].clone(),
            created_at: created,
            updated_at: created,
            version: 1,
            deleted_at: None,
            deleted_by: None,
            custom: "{}".into(),
        });
    }
    let mut contact_rows = Vec::with_capacity(size.contacts);
    for n in 0..size.contacts {
        let account = (size.accounts > 0).then(|| &account_rows[rng.gen_range(0..size.accounts)]);
        let (first, last) = (pick(&mut rng, FIRST), pick(&mut rng, LAST));
        let email = format!(
            "{}.{}{}@example-{}.com",
            ascii_local_part(first),
            ascii_local_part(last),
            n,
            account.map_or(0, |a| a.id.len())
        );
        let phone = format!("+49170{:07}", rng.gen_range(1_000_000..9_999_999));
        let created = at(rng.gen_range(0..31_536_000_000));
        contact_rows.push(ContactRow {
            id: id("con", &mut rng, base_ms, n),
            first_name: first.to_owned(),
            last_name: last.to_owned(),
            title: Some(
                ["CEO", "CTO", "Buyer", "Head of IT", "Office Manager", "CFO"][rng.gen_range(0..6)]
                    .to_owned(),
            ),
            emails: serde_json::json!([{"kind": "work", "value": email}]).to_string(),
            email_key: Some(email.clone()),
            phones: serde_json::json!([{"kind": "mobile", "value": phone}]).to_string(),
            search_text: format!("{first} {last} {email} {phone}").to_lowercase(),
            preferred_channel: Some(
                ["email", "phone", "sms", "in_person"][rng.gen_range(0..4)].to_owned(),
            ),
            language: Some(["de", "en", "fr", "zh"][rng.gen_range(0..4)].to_owned()),
            account_id: account.map(|a| a.id.clone()),
            owner_id: account
                .map_or_else(|| owners[n % owners.len()].clone(), |a| a.owner_id.clone()),
            consent_state: ["unknown", "opted_in", "opted_out"][rng.gen_range(0..3)].to_owned(),
            consent_at: Some(created),
            consent_source: Some("demo".into()),
            created_at: created,
            updated_at: created,
            version: 1,
            deleted_at: None,
            deleted_by: None,
            custom: "{}".into(),
        });
    }
    let total = size.accounts + size.contacts + size.activities + size.purchases;
    let mut done = 0;
    for chunk in account_rows.chunks(BATCH) {
        insert_rows!(app, accounts::table, chunk);
        done += chunk.len();
        progress("accounts", done, total);
    }
    // Tags on every fifth account and contact.
    if !tag_ids.is_empty() {
        let links: Vec<_> = account_rows
            .iter()
            .step_by(5)
            .map(|a| {
                (
                    account_tags::account_id.eq(a.id.clone()),
                    account_tags::tag_id.eq(tag_ids[a.name.len() % tag_ids.len()].clone()),
                )
            })
            .collect();
        for chunk in links.chunks(BATCH) {
            insert_rows!(app, account_tags::table, chunk.to_vec());
        }
    }
    for chunk in contact_rows.chunks(BATCH) {
        insert_rows!(app, contacts::table, chunk);
        done += chunk.len();
        progress("contacts", done, total);
    }
    if !tag_ids.is_empty() {
        let links: Vec<_> = contact_rows
            .iter()
            .step_by(5)
            .map(|c| {
                (
                    contact_tags::contact_id.eq(c.id.clone()),
                    contact_tags::tag_id.eq(tag_ids[c.last_name.len() % tag_ids.len()].clone()),
                )
            })
            .collect();
        for chunk in links.chunks(BATCH) {
            insert_rows!(app, contact_tags::table, chunk.to_vec());
        }
    }
    // Activities are generated batch by batch to keep memory flat.
    let mut n = 0;
    while n < size.activities {
        let count = BATCH.min(size.activities - n);
        let mut rows = Vec::with_capacity(count);
        for _ in 0..count {
            let (subject_type, subject_id, owner) = if !contact_rows.is_empty()
                && (rng.gen_range(0..4) > 0 || account_rows.is_empty())
            {
                let c = &contact_rows[rng.gen_range(0..contact_rows.len())];
                ("Contact", c.id.clone(), c.owner_id.clone())
            } else if !account_rows.is_empty() {
                let a = &account_rows[rng.gen_range(0..account_rows.len())];
                ("Account", a.id.clone(), a.owner_id.clone())
            } else {
                break;
            };
            let kind = pick(&mut rng, KINDS);
            let occurred = at(rng.gen_range(0..31_536_000_000));
            let task = kind == "task";
            rows.push(ActivityRow {
                id: id("act", &mut rng, base_ms, n),
                kind: kind.to_owned(),
                subject_type: subject_type.to_owned(),
                subject_id,
                title: format!("{} #{}", kind, n + 1),
                body: Some("Generated demo entry.".into()),
                occurred_at: occurred,
                duration_secs: (kind == "call" || kind == "meeting")
                    .then(|| rng.gen_range(60..3600)),
                outcome: (kind == "call")
                    .then(|| ["reached", "voicemail", "no answer"][rng.gen_range(0..3)].to_owned()),
                participants: "[]".into(),
                owner_id: owner.clone(),
                assignee_id: task.then(|| owner.clone()),
                due_at: task.then(|| occurred + Duration::days(7)),
                remind_at: None,
                reminded_at: None,
                completed_at: (task && rng.gen_bool(0.7)).then_some(occurred),
                completed_by: None,
                created_at: occurred,
                updated_at: occurred,
                version: 1,
                deleted_at: None,
            });
            n += 1;
        }
        if rows.is_empty() {
            break;
        }
        insert_rows!(app, activities::table, &rows);
        done += rows.len();
        progress("activities", done, total);
    }
    let mut n = 0;
    while n < size.purchases && !account_rows.is_empty() {
        let count = BATCH.min(size.purchases - n);
        let mut rows = Vec::with_capacity(count);
        for _ in 0..count {
            let a = &account_rows[rng.gen_range(0..account_rows.len())];
            let qty = rng.gen_range(1..20);
            let unit = rng.gen_range(500..50_000);
            let ordered = at(rng.gen_range(0..31_536_000_000));
            rows.push(PurchaseRow {
                id: id("pur", &mut rng, base_ms, n),
                account_id: a.id.clone(),
                contact_id: None,
                order_number: format!("SO-{:07}", n + 1),
                ordered_at: ordered,
                amount_minor: qty * unit,
                currency: "EUR".into(),
                line_items: serde_json::json!([{"sku": format!("SKU-{}", unit % 97), "name": "Widget", "quantity": qty, "unitAmountMinor": unit}]).to_string(),
                external_id: Some(format!("erp-{}", n + 1)),
                idempotency_key: format!("demo-{}-{}", size.seed, n + 1),
                created_by: None,
                created_at: ordered,
            });
            n += 1;
        }
        insert_rows!(app, purchases::table, &rows);
        done += rows.len();
        progress("purchases", done, total);
    }
    app.db.analyze().await
}

/// Makes sure tags with these names exist; returns their ids.
pub async fn ensure_tags(app: &App, names: &[&str]) -> Result<Vec<String>> {
    use crm_core::schema::tags;
    let mut out = Vec::new();
    for name in names {
        let mut tx = app.db.begin().await?;
        let mut conn = tx.conn();
        let found: Option<String> = db_run!(&mut conn, |c| tags::table
            .filter(tags::name.eq(*name))
            .select(tags::id)
            .first(c)
            .await
            .optional())?;
        let id = match found {
            Some(id) => id,
            None => {
                let now = crm_core::ids::now();
                let row = crate::tags::TagRow {
                    id: crm_core::ids::new_id("tag"),
                    name: (*name).to_owned(),
                    created_at: now,
                    updated_at: now,
                    version: 1,
                };
                db_run!(&mut conn, |c| diesel::insert_into(tags::table)
                    .values(row.clone())
                    .execute(c)
                    .await)?;
                row.id
            }
        };
        tx.commit().await?;
        out.push(id);
    }
    Ok(out)
}
