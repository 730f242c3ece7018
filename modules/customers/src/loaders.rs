//! Per-request batch loaders, so a page of accounts with their contacts,
//! tags and timelines costs a fixed number of SQL statements however many
//! rows the page has. Each loader applies the caller's row scope; a fresh
//! set is made for every request, so nothing is shared between users.

use std::collections::HashMap;

use async_graphql::dataloader::{DataLoader, HashMapCache, Loader};
use crm_core::access::{Principal, row_filter_for};
use crm_core::app::App;
use crm_core::custom::{self, Def};
use crm_core::error::Error;
use crm_core::schema::{activities, contacts};
use crm_core::{apply_row_filter, db_run};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::activities::repo::ActivityRow;
use crate::contacts::repo::ContactRow;
use crate::tags::{self, TagRow};

/// What every loader needs: the database and who is asking.
#[derive(Clone)]
pub struct Scope {
    app: App,
    principal: Principal,
}

/// Live contacts of accounts, by last name.
pub struct ContactsByAccount(Scope);
/// Timeline entries of subjects (type, id), newest first.
pub struct ActivitiesBySubject(Scope);
/// Tags of accounts.
pub struct TagsByAccount(Scope);
/// Tags of contacts.
pub struct TagsByContact(Scope);

/// The module's loaders for one request. They cache within the request, so
/// a list resolver can prefetch for its whole page (see [`prefetch_accounts`])
/// and the field resolvers find everything loaded.
pub struct Loaders {
    /// Contacts per account.
    pub contacts: DataLoader<ContactsByAccount, HashMapCache>,
    /// Timeline per subject.
    pub activities: DataLoader<ActivitiesBySubject, HashMapCache>,
    /// Tags per account.
    pub account_tags: DataLoader<TagsByAccount, HashMapCache>,
    /// Tags per contact.
    pub contact_tags: DataLoader<TagsByContact, HashMapCache>,
    /// Custom field definitions per entity, loaded once per request.
    custom_defs: tokio::sync::Mutex<HashMap<&'static str, std::sync::Arc<Vec<Def>>>>,
}

impl Loaders {
    /// Fresh loaders for one request by `principal`.
    pub fn new(app: &App, principal: &Principal) -> Loaders {
        let s = Scope {
            app: app.clone(),
            principal: principal.clone(),
        };
        Loaders {
            contacts: DataLoader::with_cache(
                ContactsByAccount(s.clone()),
                tokio::spawn,
                HashMapCache::default(),
            ),
            activities: DataLoader::with_cache(
                ActivitiesBySubject(s.clone()),
                tokio::spawn,
                HashMapCache::default(),
            ),
            account_tags: DataLoader::with_cache(
                TagsByAccount(s.clone()),
                tokio::spawn,
                HashMapCache::default(),
            ),
            contact_tags: DataLoader::with_cache(
                TagsByContact(s),
                tokio::spawn,
                HashMapCache::default(),
            ),
            custom_defs: Default::default(),
        }
    }

    /// The live custom field definitions of `entity`, once per request.
    pub async fn custom_defs(
        &self,
        app: &App,
        entity: &'static str,
    ) -> crm_core::Result<std::sync::Arc<Vec<Def>>> {
        let mut cache = self.custom_defs.lock().await;
        if let Some(d) = cache.get(entity) {
            return Ok(d.clone());
        }
        let mut c = app.db.conn().await?;
        let defs = std::sync::Arc::new(custom::definitions(&mut c.conn(), entity).await?);
        cache.insert(entity, defs.clone());
        Ok(defs)
    }
}

impl Loader<String> for ContactsByAccount {
    type Value = Vec<ContactRow>;
    type Error = Error;

    async fn load(&self, keys: &[String]) -> Result<HashMap<String, Self::Value>, Self::Error> {
        let scope = row_filter_for(&self.0.app, &self.0.principal, "Contact", "read").await?;
        let mut c = self.0.app.db.conn().await?;
        let mut conn = c.conn();
        let rows: Vec<ContactRow> = db_run!(&mut conn, |c| {
            let q = contacts::table
                .filter(contacts::account_id.eq_any(keys))
                .filter(contacts::deleted_at.is_null())
                .into_boxed();
            apply_row_filter!(q, &scope, contacts::owner_id)
                .order((contacts::last_name.asc(), contacts::id.asc()))
                .select(ContactRow::as_select())
                .load(c)
                .await
        })?;
        let mut out: HashMap<String, Vec<ContactRow>> =
            keys.iter().map(|k| (k.clone(), Vec::new())).collect();
        for r in rows {
            if let Some(a) = r.account_id.clone() {
                out.entry(a).or_default().push(r);
            }
        }
        Ok(out)
    }
}

impl Loader<(String, String)> for ActivitiesBySubject {
    type Value = Vec<ActivityRow>;
    type Error = Error;

    async fn load(
        &self,
        keys: &[(String, String)],
    ) -> Result<HashMap<(String, String), Self::Value>, Self::Error> {
        let scope = row_filter_for(&self.0.app, &self.0.principal, "Activity", "read").await?;
        let ids: Vec<&String> = keys.iter().map(|(_, id)| id).collect();
        let mut c = self.0.app.db.conn().await?;
        let mut conn = c.conn();
        let rows: Vec<ActivityRow> = db_run!(&mut conn, |c| {
            let q = activities::table
                .filter(activities::subject_id.eq_any(&ids))
                .filter(activities::deleted_at.is_null())
                .into_boxed();
            apply_row_filter!(
                q,
                &scope,
                activities::owner_id,
                assignee = activities::assignee_id
            )
            .order((activities::occurred_at.desc(), activities::id.desc()))
            .select(ActivityRow::as_select())
            .load(c)
            .await
        })?;
        let mut out: HashMap<(String, String), Vec<ActivityRow>> =
            keys.iter().map(|k| (k.clone(), Vec::new())).collect();
        for r in rows {
            if let Some(list) = out.get_mut(&(r.subject_type.clone(), r.subject_id.clone())) {
                list.push(r);
            }
        }
        Ok(out)
    }
}

fn group(keys: &[String], rows: Vec<(String, TagRow)>) -> HashMap<String, Vec<TagRow>> {
    let mut out: HashMap<String, Vec<TagRow>> =
        keys.iter().map(|k| (k.clone(), Vec::new())).collect();
    for (k, t) in rows {
        out.entry(k).or_default().push(t);
    }
    out
}

impl Loader<String> for TagsByAccount {
    type Value = Vec<TagRow>;
    type Error = Error;

    async fn load(&self, keys: &[String]) -> Result<HashMap<String, Self::Value>, Self::Error> {
        let mut c = self.0.app.db.conn().await?;
        Ok(group(keys, tags::for_accounts(&mut c.conn(), keys).await?))
    }
}

impl Loader<String> for TagsByContact {
    type Value = Vec<TagRow>;
    type Error = Error;

    async fn load(&self, keys: &[String]) -> Result<HashMap<String, Self::Value>, Self::Error> {
        let mut c = self.0.app.db.conn().await?;
        Ok(group(keys, tags::for_contacts(&mut c.conn(), keys).await?))
    }
}

/// The first page of rows already loaded in list order.
pub fn first_page<N: async_graphql::OutputType>(
    rows: Vec<(String, N)>,
    first: Option<i32>,
) -> crm_core::Result<crm_core::paging::Page<N>> {
    let q = crm_core::paging::query(first, None, None, None)?;
    let total = rows.len() as i64;
    let page = rows.into_iter().take(q.limit as usize + 1).collect();
    Ok(crm_core::paging::build_keyed(&q, page, total))
}

/// Loads, in one batch per relation, everything a page of accounts selects:
/// their tags, contacts, and the contacts' tags and timelines. The field
/// resolvers then read the request's cache, so the page costs the same
/// number of statements whatever its size.
pub async fn prefetch_accounts(
    ctx: &async_graphql::Context<'_>,
    ids: &[String],
) -> crm_core::Result<()> {
    let Some(l) = ctx.data_opt::<Loaders>() else {
        return Ok(());
    };
    let node = ctx.look_ahead().field("edges").field("node");
    if node.field("tags").exists() {
        l.account_tags.load_many(ids.iter().cloned()).await?;
    }
    if node.field("timeline").exists() {
        l.activities
            .load_many(ids.iter().map(|a| ("Account".to_owned(), a.clone())))
            .await?;
    }
    let contacts = node.field("contacts");
    if contacts.exists() {
        let found = l.contacts.load_many(ids.iter().cloned()).await?;
        let cids: Vec<String> = found.values().flatten().map(|c| c.id.clone()).collect();
        let cnode = contacts.field("edges").field("node");
        if cnode.field("tags").exists() {
            l.contact_tags.load_many(cids.iter().cloned()).await?;
        }
        if cnode.field("timeline").exists() {
            l.activities
                .load_many(cids.iter().map(|c| ("Contact".to_owned(), c.clone())))
                .await?;
        }
    }
    Ok(())
}

/// The custom field values of a record the caller may read (the `custom`
/// field of accounts and contacts).
pub async fn custom_values(
    ctx: &async_graphql::Context<'_>,
    entity: &'static str,
    stored: &str,
) -> crm_core::Result<async_graphql::Json<serde_json::Value>> {
    let app = ctx.data_unchecked::<App>();
    let defs = match ctx.data_opt::<Loaders>() {
        Some(l) => l.custom_defs(app, entity).await?,
        None => {
            let mut c = app.db.conn().await?;
            std::sync::Arc::new(custom::definitions(&mut c.conn(), entity).await?)
        }
    };
    let by = crm_core::access::principal(ctx);
    let may_read = |k: &str| custom::allowed(app, by, entity, k, "read");
    Ok(async_graphql::Json(custom::readable(
        &defs, stored, &may_read,
    )))
}
