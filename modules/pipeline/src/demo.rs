//! Demo and benchmark data for the pipeline: three pipelines with their
//! stages, products in standard and partner price books, opportunities on
//! the demo accounts with 18 months of stage history, line items, and
//! quarterly quotas. Written in large batches straight to the tables (no
//! events or audit entries: this is seeding, not business activity).
//!
//! Each opportunity walks its pipeline's open stages from its creation
//! date: it stays in a stage for a random time around the stage's typical
//! length, then is lost with the stage's loss rate or moves on, and after
//! the last open stage is won. Deals whose walk reaches today stay open
//! where they are, with an expected close date ahead. So the data has the
//! shape of a real sales team's: about a third of new business won, most
//! renewals renewed, cycles of two to four months, an open pipeline that
//! thins out stage by stage. Everything but the dates comes from the seed;
//! the dates are relative to the day it runs, so the open pipeline lies
//! ahead of "now".

use std::collections::{BTreeMap, HashMap};

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime};
use crm_core::app::App;
use crm_core::db::Conn;
use crm_core::db_run;
use crm_core::entity::store::insert_rows;
use crm_core::error::{Error, Result};
use crm_core::ids::id_at;
use crm_core::schema::{accounts, contacts, opportunities, opportunity_history, pipelines};
use crm_core::schema::{opportunity_line_items, products};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::forecasts::quotas::{QuotaRow, Quotas};
use crate::opportunities::history::{HistoryRow, entry};
use crate::opportunities::line_items::{LineItemRow, line_total};
use crate::opportunities::repo::{Opportunities, OpportunityRow};
use crate::pipelines::repo::{PipelineRow, Pipelines, StageRow, Stages};
use crate::products::repo::Products;
use crate::products::repo::{EntryRow, PriceBookEntries, PriceBookRow, PriceBooks, ProductRow};

/// How much to generate.
#[derive(Clone, Debug)]
pub struct DemoSize {
    /// Opportunities (spread over the accounts).
    pub opportunities: usize,
    /// Products (each priced in every price book).
    pub products: usize,
    /// Random seed: the same seed gives the same data (dates aside).
    pub seed: u64,
}

/// What was made, for the summary line.
#[derive(Clone, Debug, Default)]
pub struct Made {
    pub pipelines: usize,
    pub products: usize,
    pub opportunities: usize,
    pub won: usize,
    pub lost: usize,
    pub history: usize,
    pub line_items: usize,
    pub quotas: usize,
}

/// Opportunities built in memory before they are written.
const BATCH: usize = 2_000;

/// The history goes back this many days (18 months).
const HISTORY_DAYS: i64 = 548;

/// One stage of a demo pipeline.
struct StageSpec {
    name: &'static str,
    probability: i64,
    category: &'static str,
    kind: &'static str,
    required: &'static [&'static str],
    rotting_days: Option<i64>,
    prompts: &'static [(&'static str, i64)],
    /// Typical days in the stage (open stages).
    mean_days: f64,
    /// Share of deals lost at the end of their time in the stage.
    loss: f64,
}

/// One demo pipeline.
struct PipelineSpec {
    name: &'static str,
    /// Share of the opportunities it gets, in percent.
    share: u32,
    /// A third of its deals are priced from the standard book as line
    /// items.
    priced: bool,
    stages: &'static [StageSpec],
    deal_names: &'static [&'static str],
    /// Amounts in whole units of the currency (log-uniform between).
    amount: (f64, f64),
}

const fn open(
    name: &'static str,
    probability: i64,
    category: &'static str,
    required: &'static [&'static str],
    mean_days: f64,
    loss: f64,
) -> StageSpec {
    StageSpec {
        name,
        probability,
        category,
        kind: "OPEN",
        required,
        rotting_days: Some(30),
        prompts: &[],
        mean_days,
        loss,
    }
}

const fn closed(name: &'static str, won: bool) -> StageSpec {
    StageSpec {
        name,
        probability: if won { 100 } else { 0 },
        category: if won { "CLOSED" } else { "OMITTED" },
        kind: if won { "WON" } else { "LOST" },
        required: &[],
        rotting_days: None,
        prompts: &[],
        mean_days: 0.0,
        loss: 0.0,
    }
}

const PIPELINES: &[PipelineSpec] = &[
    PipelineSpec {
        name: "New business",
        share: 70,
        priced: true,
        stages: &[
            StageSpec {
                prompts: &[("Discovery call", 3)],
                ..open("Qualification", 10, "PIPELINE", &[], 12.0, 0.35)
            },
            open("Needs analysis", 25, "PIPELINE", &["amount"], 18.0, 0.25),
            StageSpec {
                prompts: &[("Send the proposal", 2)],
                ..open(
                    "Proposal",
                    50,
                    "BEST_CASE",
                    &["amount", "closeDate"],
                    20.0,
                    0.2,
                )
            },
            open(
                "Negotiation",
                75,
                "COMMIT",
                &["amount", "closeDate", "primaryContactId"],
                15.0,
                0.15,
            ),
            closed("Closed won", true),
            closed("Closed lost", false),
        ],
        deal_names: &["New licences", "Expansion", "Upgrade", "Pilot", "Services"],
        amount: (5_000.0, 250_000.0),
    },
    PipelineSpec {
        name: "Renewals",
        share: 15,
        priced: false,
        stages: &[
            open("Renewal due", 60, "BEST_CASE", &["amount"], 25.0, 0.1),
            open(
                "Renewal negotiation",
                85,
                "COMMIT",
                &["amount", "closeDate"],
                20.0,
                0.1,
            ),
            closed("Renewed", true),
            closed("Churned", false),
        ],
        deal_names: &["Renewal"],
        amount: (3_000.0, 120_000.0),
    },
    PipelineSpec {
        name: "Channel",
        share: 15,
        priced: false,
        stages: &[
            open("Registered", 10, "PIPELINE", &[], 10.0, 0.3),
            open("Qualified", 30, "PIPELINE", &["amount"], 20.0, 0.25),
            open(
                "Proposal",
                60,
                "BEST_CASE",
                &["amount", "closeDate"],
                18.0,
                0.2,
            ),
            closed("Won", true),
            closed("Lost", false),
        ],
        deal_names: &["Partner deal", "Reseller order"],
        amount: (2_000.0, 80_000.0),
    },
];

const LOST_REASONS: &[&str] = &["Price", "Competitor", "No budget", "No decision", "Timing"];
const SOURCES: &[&str] = &["web", "referral", "event", "outbound", "campaign"];
const NEXT_STEPS: &[&str] = &[
    "Follow-up call",
    "Send references",
    "Demo for the team",
    "Security questionnaire",
    "Meet the buyer",
];

/// (family, unit, names): products are taken in turn from the families.
const FAMILIES: &[(&str, &str, &[&str])] = &[
    (
        "Licences",
        "seat",
        &[
            "Cloud Starter",
            "Cloud Professional",
            "Cloud Enterprise",
            "Analytics add-on",
            "Marketing add-on",
            "Service add-on",
        ],
    ),
    (
        "Services",
        "day",
        &[
            "Onboarding",
            "Data migration",
            "Custom integration",
            "Training day",
        ],
    ),
    (
        "Support",
        "year",
        &[
            "Standard support",
            "Premium support",
            "Round-the-clock support",
        ],
    ),
    (
        "Hardware",
        "unit",
        &["Card reader", "Kiosk terminal", "Barcode scanner"],
    ),
];

/// (currency, share in percent, units per EUR): the accounts' currencies.
const CURRENCIES: &[(&str, u32, f64)] = &[("EUR", 80, 1.0), ("USD", 12, 1.1), ("CNY", 8, 7.8)];

/// A demo account: id, owner, name, its first contact.
struct Acct {
    id: String,
    owner: String,
    name: String,
    contact: Option<String>,
    currency: &'static str,
}

/// Fills the pipeline tables; refuses a database that already has
/// pipelines, products or opportunities.
pub async fn generate(
    app: &App,
    size: &DemoSize,
    progress: &(dyn Fn(&str, usize, usize) + Send + Sync),
) -> Result<Made> {
    let mut rng = StdRng::seed_from_u64(size.seed ^ 0x7069_7065);
    let accts = {
        let mut c = app.db.conn().await?;
        let mut conn = c.conn();
        refuse_if_not_empty(&mut conn).await?;
        demo_accounts(&mut conn, &mut rng).await?
    };
    if accts.is_empty() && size.opportunities > 0 {
        return Err(Error::invalid(
            "opportunities",
            "opportunities need accounts: run with --accounts above 0",
        ));
    }
    let now = crm_core::ids::now();
    let today = now.date();
    let start = now - Duration::days(HISTORY_DAYS);
    let ms = |t: NaiveDateTime| t.and_utc().timestamp_millis().max(0) as u64;
    let mut made = Made::default();

    // Pipelines and stages.
    let mut pipeline_rows = Vec::new();
    let mut stage_rows: Vec<Vec<StageRow>> = Vec::new();
    for (p, spec) in PIPELINES.iter().enumerate() {
        let pid = id_at("pip", ms(start), rng.r#gen());
        pipeline_rows.push(PipelineRow {
            id: pid.clone(),
            name: spec.name.to_owned(),
            position: p as i64 + 1,
            active: true,
            created_at: start,
            updated_at: start,
            version: 1,
            renewals: spec.name == "Renewals",
        });
        let stages = spec
            .stages
            .iter()
            .enumerate()
            .map(|(i, s)| StageRow {
                id: id_at("stg", ms(start) + i as u64, rng.r#gen()),
                pipeline_id: pid.clone(),
                name: s.name.to_owned(),
                position: i as i64 + 1,
                probability: s.probability,
                forecast_category: s.category.to_owned(),
                kind: s.kind.to_owned(),
                required_fields: json!(s.required).to_string(),
                rotting_days: s.rotting_days,
                active: true,
                created_at: start,
                updated_at: start,
                version: 1,
                next_steps: Value::Array(
                    s.prompts
                        .iter()
                        .map(|(t, d)| json!({"title": t, "dueInDays": d}))
                        .collect(),
                )
                .to_string(),
            })
            .collect();
        stage_rows.push(stages);
    }

    // Products, the standard book of each currency and a partner book.
    let mut product_rows = Vec::new();
    let mut base_price = Vec::new();
    for n in 0..size.products {
        let (family, unit, names) = FAMILIES[n % FAMILIES.len()];
        let round = n / FAMILIES.len();
        let base = names[round % names.len()];
        let name = match round / names.len() {
            0 => base.to_owned(),
            k => format!("{base} {}", k + 1),
        };
        product_rows.push(ProductRow {
            id: id_at("prd", ms(start) + n as u64, rng.r#gen()),
            name,
            code: format!("CRM-{:04}", n + 1),
            family: Some(family.to_owned()),
            unit: Some(unit.to_owned()),
            description: None,
            active: true,
            custom: "{}".into(),
            created_at: start,
            updated_at: start,
            version: 1,
        });
        let whole: i64 = match family {
            "Licences" => rng.gen_range(20..200) * 12,
            "Services" => rng.gen_range(8..16) * 100,
            "Support" => rng.gen_range(10..60) * 100,
            _ => rng.gen_range(2..40) * 25,
        };
        base_price.push(whole);
    }
    let mut books = Vec::new();
    for (currency, _, _) in CURRENCIES {
        books.push((
            PriceBookRow {
                id: id_at("pbk", ms(start), rng.r#gen()),
                name: format!("Standard {currency}"),
                currency: (*currency).to_owned(),
                is_standard: true,
                active: true,
                created_at: start,
                updated_at: start,
                version: 1,
            },
            100,
        ));
    }
    books.push((
        PriceBookRow {
            id: id_at("pbk", ms(start), rng.r#gen()),
            name: "Partner EUR".into(),
            currency: "EUR".into(),
            is_standard: false,
            active: true,
            created_at: start,
            updated_at: start,
            version: 1,
        },
        80,
    ));
    let mut entries = Vec::new();
    // Standard entries by currency: (entry id, product id, unit price).
    let mut standard: HashMap<&str, Vec<(String, String, i64)>> = HashMap::new();
    for (book, percent) in &books {
        let rate = CURRENCIES
            .iter()
            .find(|c| c.0 == book.currency)
            .map_or(1.0, |c| c.2);
        for (p, whole) in product_rows.iter().zip(&base_price) {
            let unit_price = ((*whole as f64) * rate * f64::from(*percent)).round() as i64;
            let e = EntryRow {
                id: id_at("pbe", ms(start), rng.r#gen()),
                price_book_id: book.id.clone(),
                product_id: p.id.clone(),
                unit_price,
                currency: book.currency.clone(),
                active: true,
                created_at: start,
                updated_at: start,
                version: 1,
            };
            if book.is_standard {
                standard
                    .entry(
                        CURRENCIES
                            .iter()
                            .find(|c| c.0 == book.currency)
                            .map_or("EUR", |c| c.0),
                    )
                    .or_default()
                    .push((e.id.clone(), p.id.clone(), unit_price));
            }
            entries.push(e);
        }
    }
    {
        let mut tx = app.db.begin().await?;
        let mut conn = tx.conn();
        insert_rows::<Pipelines>(&mut conn, &pipeline_rows).await?;
        for s in &stage_rows {
            insert_rows::<Stages>(&mut conn, s).await?;
        }
        insert_rows::<Products>(&mut conn, &product_rows).await?;
        let book_rows: Vec<PriceBookRow> = books.iter().map(|b| b.0.clone()).collect();
        insert_rows::<PriceBooks>(&mut conn, &book_rows).await?;
        insert_rows::<PriceBookEntries>(&mut conn, &entries).await?;
        tx.commit().await?;
    }
    made.pipelines = pipeline_rows.len();
    made.products = product_rows.len();

    // Opportunities with their history and line items, batch by batch.
    // Won amounts in EUR per owner and quarter, for the quotas.
    let mut won_eur: BTreeMap<(String, NaiveDate), i64> = BTreeMap::new();
    let mut n = 0;
    while n < size.opportunities {
        let count = BATCH.min(size.opportunities - n);
        let mut opps = Vec::with_capacity(count);
        let mut history = Vec::new();
        let mut lines = Vec::new();
        for _ in 0..count {
            let a = &accts[rng.gen_range(0..accts.len())];
            let roll = rng.gen_range(0..100);
            let p = PIPELINES
                .iter()
                .scan(0, |acc, s| {
                    *acc += s.share;
                    Some(*acc)
                })
                .position(|edge| roll < edge)
                .unwrap_or(0);
            let deal = Deal {
                spec: &PIPELINES[p],
                pipeline: &pipeline_rows[p],
                stages: &stage_rows[p],
                acct: a,
                standard: standard.get(a.currency).map(Vec::as_slice).unwrap_or(&[]),
                start,
                now,
            };
            let w = deal.walk(&mut rng, n);
            if let Some(closed) = w.opp.closed_at
                && w.won
            {
                made.won += 1;
                if w.opp.currency.as_deref() == Some("EUR") {
                    *won_eur
                        .entry((w.opp.owner_id.clone(), quarter_start(closed.date())))
                        .or_default() += w.opp.amount.unwrap_or(0);
                }
            } else if w.opp.closed_at.is_some() {
                made.lost += 1;
            }
            opps.push(w.opp);
            history.extend(w.history);
            lines.extend(w.lines);
            n += 1;
        }
        let mut tx = app.db.begin().await?;
        let mut conn = tx.conn();
        insert_rows::<Opportunities>(&mut conn, &opps).await?;
        crm_core::insert_all!(&mut conn, opportunity_history::table, &history);
        crm_core::insert_all!(&mut conn, opportunity_line_items::table, &lines);
        tx.commit().await?;
        made.opportunities += opps.len();
        made.history += history.len();
        made.line_items += lines.len();
        progress("deals", n, size.opportunities);
    }

    // Quarterly quotas in EUR for every owner with deals: the owner's
    // average won per quarter, raised by a fifth, from the first quarter of
    // the history to the one after today's.
    let mut per_owner: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    for ((owner, _), v) in &won_eur {
        let e = per_owner.entry(owner.as_str()).or_default();
        e.0 += v;
        e.1 += 1;
    }
    let mut quotas = Vec::new();
    for (owner, (sum, quarters)) in per_owner {
        let target = (sum / quarters.max(1)) * 6 / 5 / 100_000 * 100_000;
        let mut q = quarter_start(start.date());
        let last = next_quarter(quarter_start(today));
        while q <= last {
            quotas.push(QuotaRow {
                id: id_at("quo", ms(start), rng.r#gen()),
                owner_id: owner.to_owned(),
                period: "QUARTER".into(),
                period_start: q.format("%Y-%m-%d").to_string(),
                currency: "EUR".into(),
                amount: target.max(100_000),
                created_at: start,
                updated_at: start,
                version: 1,
            });
            q = next_quarter(q);
        }
    }
    {
        let mut tx = app.db.begin().await?;
        insert_rows::<Quotas>(&mut tx.conn(), &quotas).await?;
        tx.commit().await?;
    }
    made.quotas = quotas.len();
    app.db.analyze().await?;
    Ok(made)
}

/// CONFLICT unless the database has no pipeline, product or opportunity.
async fn refuse_if_not_empty(conn: &mut Conn<'_>) -> Result<()> {
    let p: i64 = db_run!(conn, |c| pipelines::table.count().get_result(c).await)?;
    let r: i64 = db_run!(conn, |c| products::table.count().get_result(c).await)?;
    let o: i64 = db_run!(conn, |c| opportunities::table.count().get_result(c).await)?;
    if p + r + o > 0 {
        return Err(Error::Conflict(format!(
            "the database already has {p} pipelines, {r} products and {o} opportunities; \
             demo pipeline data goes into a database without any"
        )));
    }
    Ok(())
}

/// The live accounts with their owner, name, first contact and a
/// currency drawn for each.
async fn demo_accounts(conn: &mut Conn<'_>, rng: &mut StdRng) -> Result<Vec<Acct>> {
    let rows: Vec<(String, String, String)> = db_run!(conn, |c| accounts::table
        .filter(accounts::deleted_at.is_null())
        .order(accounts::id)
        .select((accounts::id, accounts::owner_id, accounts::name))
        .load(c)
        .await)?;
    let firsts: Vec<(Option<String>, Option<String>)> = db_run!(conn, |c| contacts::table
        .filter(contacts::account_id.is_not_null())
        .filter(contacts::deleted_at.is_null())
        .group_by(contacts::account_id)
        .select((contacts::account_id, diesel::dsl::min(contacts::id)))
        .load(c)
        .await)?;
    let first: HashMap<String, String> = firsts
        .into_iter()
        .filter_map(|(a, c)| Some((a?, c?)))
        .collect();
    Ok(rows
        .into_iter()
        .map(|(id, owner, name)| {
            let roll = rng.gen_range(0..100);
            let mut edge = 0;
            let currency = CURRENCIES
                .iter()
                .find(|c| {
                    edge += c.1;
                    roll < edge
                })
                .map_or("EUR", |c| c.0);
            Acct {
                contact: first.get(&id).cloned(),
                id,
                owner,
                name,
                currency,
            }
        })
        .collect())
}

fn quarter_start(d: NaiveDate) -> NaiveDate {
    NaiveDate::from_ymd_opt(d.year(), (d.month0() / 3) * 3 + 1, 1).unwrap_or(d)
}

fn next_quarter(q: NaiveDate) -> NaiveDate {
    let (y, m) = if q.month() >= 10 {
        (q.year() + 1, 1)
    } else {
        (q.year(), q.month() + 3)
    };
    NaiveDate::from_ymd_opt(y, m, 1).unwrap_or(q)
}

/// One deal to generate.
struct Deal<'a> {
    spec: &'a PipelineSpec,
    pipeline: &'a PipelineRow,
    stages: &'a [StageRow],
    acct: &'a Acct,
    standard: &'a [(String, String, i64)],
    start: NaiveDateTime,
    now: NaiveDateTime,
}

/// A generated deal.
struct Walked {
    opp: OpportunityRow,
    won: bool,
    history: Vec<HistoryRow>,
    lines: Vec<LineItemRow>,
}

impl Deal<'_> {
    /// Builds the deal and walks it through its stages.
    fn walk(&self, rng: &mut StdRng, n: usize) -> Walked {
        let spec = self.spec;
        let created =
            self.start + Duration::seconds(rng.gen_range(0..HISTORY_DAYS * 86_400 - 3_600));
        let created_ms = created.and_utc().timestamp_millis().max(0) as u64;
        let id = id_at("opp", created_ms, rng.r#gen());
        let rate = CURRENCIES
            .iter()
            .find(|c| c.0 == self.acct.currency)
            .map_or(1.0, |c| c.2);
        let (lo, hi) = spec.amount;
        let whole = (lo.ln() + rng.r#gen::<f64>() * (hi.ln() - lo.ln())).exp() * rate;
        let mut amount = ((whole / 100.0).round() as i64).max(1) * 10_000;
        // A third of new business is priced from the standard book.
        let mut lines = Vec::new();
        if spec.priced && !self.standard.is_empty() && rng.gen_range(0..3) == 0 {
            for pos in 0..rng.gen_range(1..4usize) {
                let (entry, product, unit) = &self.standard[rng.gen_range(0..self.standard.len())];
                let quantity_milli = rng.gen_range(1..50) * 1_000;
                let discount_bp = [0, 0, 500, 1_000, 1_500][rng.gen_range(0..5)];
                lines.push(LineItemRow {
                    id: id_at("oli", created_ms + pos as u64, rng.r#gen()),
                    opportunity_id: id.clone(),
                    product_id: product.clone(),
                    price_book_entry_id: entry.clone(),
                    position: pos as i64 + 1,
                    quantity_milli,
                    list_price: *unit,
                    unit_price: *unit,
                    discount_bp,
                    total: line_total(*unit, quantity_milli, discount_bp),
                    currency: self.acct.currency.to_owned(),
                    created_at: created,
                    updated_at: created,
                    version: 1,
                });
            }
            amount = lines.iter().map(|l| l.total).sum();
        }
        // The close date expected after the whole cycle from `from`.
        let cycle: f64 = spec.stages.iter().map(|s| s.mean_days).sum();
        let expected_close = |from: NaiveDateTime, rng: &mut StdRng| {
            day(from + Duration::days((cycle * rng.gen_range(0.7..1.4)) as i64))
        };
        let first = &self.stages[0];
        let known = !lines.is_empty() || rng.gen_bool(0.5);
        let mut row = OpportunityRow {
            id: id.clone(),
            name: format!(
                "{} – {}",
                spec.deal_names[n % spec.deal_names.len()],
                self.acct.name
            ),
            account_id: self.acct.id.clone(),
            primary_contact_id: self.acct.contact.clone(),
            owner_id: self.acct.owner.clone(),
            pipeline_id: self.pipeline.id.clone(),
            stage_id: first.id.clone(),
            amount: known.then_some(amount),
            currency: Some(self.acct.currency.to_owned()),
            close_date: known.then(|| expected_close(created, rng)),
            probability: first.probability,
            forecast_category: first.forecast_category.clone(),
            next_step: Some(NEXT_STEPS[rng.gen_range(0..NEXT_STEPS.len())].to_owned()),
            source: Some(if spec.name == "Channel" {
                "partner".to_owned()
            } else {
                SOURCES[rng.gen_range(0..SOURCES.len())].to_owned()
            }),
            campaign_id: None,
            lost_reason: None,
            closed_at: None,
            custom: "{}".into(),
            created_at: created,
            updated_at: created,
            version: 1,
            deleted_at: None,
            deleted_by: None,
            tags: "[]".into(),
            stage_entered_at: created,
            primary_quote_id: None,
        };
        let by = Some(self.acct.owner.clone());
        let mut history = Vec::new();
        let mut note =
            |before: Option<&OpportunityRow>, after: &mut OpportunityRow, at, rng: &mut StdRng| {
                if before.is_some() {
                    after.version += 1;
                    after.updated_at = at;
                }
                let at_ms = at.and_utc().timestamp_millis().max(0) as u64;
                history.extend(entry(
                    id_at("oph", at_ms, rng.r#gen()),
                    before,
                    after,
                    by.clone(),
                    at,
                ));
            };
        note(None, &mut row, created, rng);
        let open = spec.stages.iter().filter(|s| s.kind == "OPEN").count();
        let (won_at, lost_at) = (open, open + 1);
        let mut at = created;
        let mut outcome = None;
        for (i, s) in spec.stages.iter().take(open).enumerate() {
            // Exponential time in the stage around its mean, 1 day to 4×.
            let days =
                (-rng.r#gen::<f64>().max(1e-9).ln() * s.mean_days).clamp(1.0, s.mean_days * 4.0);
            let leave = at + Duration::seconds((days * 86_400.0) as i64);
            if leave >= self.now {
                break;
            }
            at = leave;
            // Without a contact a deal cannot enter a stage that needs one.
            let blocked = self.acct.contact.is_none()
                && spec
                    .stages
                    .get(i + 1)
                    .is_some_and(|next| next.required.contains(&"primaryContactId"));
            let to = if blocked || rng.gen_bool(s.loss) {
                lost_at
            } else if i + 1 == open {
                won_at
            } else {
                i + 1
            };
            let before = row.clone();
            let target = &self.stages[to];
            row.stage_id = target.id.clone();
            row.probability = target.probability;
            row.forecast_category = target.forecast_category.clone();
            row.stage_entered_at = at;
            if row.amount.is_none() && to != lost_at {
                row.amount = Some(amount);
                row.close_date = Some(expected_close(at, rng));
            }
            if to == won_at || to == lost_at {
                row.close_date = Some(day(at));
                row.closed_at = Some(at);
                row.next_step = None;
                if to == lost_at {
                    row.lost_reason =
                        Some(LOST_REASONS[rng.gen_range(0..LOST_REASONS.len())].to_owned());
                } else if lines.is_empty() && rng.gen_bool(0.3) {
                    // A closing discount.
                    row.amount = row.amount.map(|a| a * 9 / 10 / 10_000 * 10_000);
                }
                outcome = Some(to == won_at);
            }
            note(Some(&before), &mut row, at, rng);
            if outcome.is_some() {
                break;
            }
        }
        // An open deal whose expected close has passed is pushed out, as
        // reps do, the day after it entered its stage.
        if outcome.is_none()
            && row
                .close_date
                .as_deref()
                .is_some_and(|c| c < day(self.now).as_str())
        {
            let before = row.clone();
            row.close_date = Some(day(self.now + Duration::days(rng.gen_range(7..60))));
            let when = (row.stage_entered_at + Duration::days(1)).min(self.now);
            note(Some(&before), &mut row, when, rng);
        }
        if row.amount.is_none() {
            row.currency = None;
        }
        Walked {
            won: outcome == Some(true),
            opp: row,
            history,
            lines,
        }
    }
}

/// `YYYY-MM-DD`.
fn day(t: NaiveDateTime) -> String {
    t.date().format("%Y-%m-%d").to_string()
}
