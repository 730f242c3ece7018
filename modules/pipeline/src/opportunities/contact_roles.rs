//! An opportunity's contact roles: the people on the customer's side and
//! their part in the deal (decision maker, influencer, …), one of them
//! primary. Like line items, a change is a write of the opportunity
//! through the entity kit (its version guards it; audit entry and event
//! in the same transaction). A contact must be one the writer may read and
//! belong to the opportunity's account (VALIDATION naming `contactId`
//! otherwise, worded the same whether or not it exists); the primary role's
//! contact is the opportunity's `primaryContactId`.

use async_graphql::{ComplexObject, Context, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, NaiveDateTime, Utc};
use crm_core::access::{principal, row_filter, row_filter_or_nothing};
use crm_core::app::App;
use crm_core::db::Conn;
use crm_core::db_run;
use crm_core::entity::{WriteCtx, store};
use crm_core::error::{Checks, Error, Result, visible};
use crm_core::ids;
use crm_core::schema::opportunity_contact_roles as cr;
use crm_customers::contacts::repo::Contacts;
use crm_customers::contacts::{Contact, contact_by_id};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::Opportunity;
use super::repo::{Opportunities, OpportunityRow};
use super::service::OpportunityFields;
use crate::values::ContactRole;

/// A contact role row.
#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = cr)]
pub struct RoleRow {
    pub id: String,
    pub opportunity_id: String,
    pub contact_id: String,
    pub role: String,
    pub is_primary: bool,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub version: i64,
}

/// One change to an opportunity's contact roles.
#[derive(Clone, Debug)]
pub enum RoleChange {
    /// A contact in a role (primary: also the opportunity's primary
    /// contact).
    Add {
        contact_id: String,
        role: ContactRole,
        primary: bool,
    },
    /// A role removed.
    Remove(String),
}

/// The contact roles of some opportunities, oldest first.
pub async fn of(conn: &mut Conn<'_>, opportunity_ids: &[String]) -> Result<Vec<RoleRow>> {
    Ok(db_run!(conn, |c| cr::table
        .filter(cr::opportunity_id.eq_any(opportunity_ids.to_vec()))
        .order((cr::created_at.asc(), cr::id.asc()))
        .select(RoleRow::as_select())
        .load(c)
        .await)?)
}

/// The opportunity a role belongs to (NOT_FOUND without one).
async fn opportunity_of(conn: &mut Conn<'_>, id: &str) -> Result<String> {
    let found: Option<String> = db_run!(conn, |c| cr::table
        .filter(cr::id.eq(id))
        .select(cr::opportunity_id)
        .first(c)
        .await
        .optional())?;
    found.ok_or_else(|| Error::NotFound(format!("opportunity contact role {id}")))
}

/// Checks `change` against `row` and returns the roles after it (not yet
/// written); sets the opportunity's primary contact when a primary role
/// is added.
pub async fn plan(
    w: &WriteCtx<'_>,
    conn: &mut Conn<'_>,
    row: &mut OpportunityRow,
    change: RoleChange,
) -> Result<Vec<RoleRow>> {
    let mut roles = of(conn, std::slice::from_ref(&row.id)).await?;
    match change {
        RoleChange::Add {
            contact_id,
            role,
            primary,
        } => {
            let mut c = Checks::default();
            let missing = || Error::invalid("contactId", "no such contact on this account");
            let scope = row_filter_or_nothing(w.app, w.by, "Contact", "read").await?;
            let contact = match ids::check(&contact_id, "con", "contactId") {
                Ok(_) => store::get::<Contacts>(conn, &scope, &contact_id).await?,
                Err(_) => None,
            };
            match contact {
                Some(k) if k.account_id.as_deref() == Some(row.account_id.as_str()) => {}
                _ => {
                    c.take::<()>(Err(missing()))?;
                }
            }
            if roles
                .iter()
                .any(|r| r.contact_id == contact_id && r.role == role.as_str())
            {
                c.take::<()>(Err(Error::invalid(
                    "role",
                    "the contact already has this role on the opportunity",
                )))?;
            }
            c.finish()?;
            if primary {
                for r in roles.iter_mut().filter(|r| r.is_primary) {
                    r.is_primary = false;
                    r.version += 1;
                    r.updated_at = ids::now();
                }
                row.primary_contact_id = Some(contact_id.clone());
            }
            let now = ids::now();
            roles.push(RoleRow {
                id: ids::new_id("ocr"),
                opportunity_id: row.id.clone(),
                contact_id,
                role: role.as_str().into(),
                is_primary: primary,
                created_at: now,
                updated_at: now,
                version: 1,
            });
        }
        RoleChange::Remove(id) => {
            let Some(gone) = roles.iter().find(|r| r.id == id).cloned() else {
                return Err(Error::NotFound(format!("opportunity contact role {id}")));
            };
            roles.retain(|r| r.id != id);
            if gone.is_primary && row.primary_contact_id.as_deref() == Some(&gone.contact_id) {
                row.primary_contact_id = None;
            }
        }
    }
    Ok(roles)
}

/// Stores the opportunity's roles as planned (in its write's transaction).
pub async fn write(conn: &mut Conn<'_>, opportunity_id: &str, roles: Vec<RoleRow>) -> Result<()> {
    let opp = opportunity_id.to_owned();
    db_run!(conn, |c| diesel::delete(
        cr::table.filter(cr::opportunity_id.eq(&opp))
    )
    .execute(c)
    .await)?;
    // A deal has a handful of roles: one statement each.
    for r in roles {
        db_run!(conn, |c| diesel::insert_into(cr::table)
            .values(r.clone())
            .execute(c)
            .await)?;
    }
    Ok(())
}

/// A contact's part in an opportunity.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(complex)]
pub struct OpportunityContactRole {
    /// `ocr_…`
    pub id: ID,
    /// The opportunity.
    pub opportunity_id: ID,
    /// The contact (of the opportunity's account).
    pub contact_id: ID,
    /// Its part in the deal.
    pub role: ContactRole,
    /// The primary contact of the deal.
    pub is_primary: bool,
    /// Added (UTC).
    pub created_at: DateTime<Utc>,
}

impl TryFrom<RoleRow> for OpportunityContactRole {
    type Error = Error;

    fn try_from(r: RoleRow) -> Result<Self> {
        Ok(OpportunityContactRole {
            id: r.id.into(),
            opportunity_id: r.opportunity_id.into(),
            contact_id: r.contact_id.into(),
            role: ContactRole::from_stored(&r.role)?,
            is_primary: r.is_primary,
            created_at: r.created_at.and_utc(),
        })
    }
}

#[ComplexObject]
impl OpportunityContactRole {
    /// The contact (null if you may not see it).
    async fn contact(&self, ctx: &Context<'_>) -> Result<Option<Contact>> {
        visible(contact_by_id(ctx, &self.contact_id).await)
    }
}

/// Input for `addOpportunityContactRole`.
#[derive(InputObject)]
pub struct CreateOpportunityContactRoleInput {
    /// A contact of the opportunity's account that you may see.
    pub contact_id: ID,
    pub role: ContactRole,
    /// Makes it the primary contact (and the opportunity's
    /// `primaryContactId`).
    #[graphql(default)]
    pub is_primary: bool,
}

/// Contact role mutations: writes of the opportunity, guarded by its
/// version, answering with the opportunity after them.
#[derive(Default)]
pub struct ContactRoleMutation;

impl ContactRoleMutation {
    async fn change(
        ctx: &Context<'_>,
        opportunity_id: &str,
        version: i64,
        change: RoleChange,
    ) -> Result<Opportunity> {
        let scope = row_filter(ctx, "Opportunity", "update").await?;
        let app = ctx.data_unchecked::<App>();
        let fields = OpportunityFields {
            contact_roles: Some(change),
            ..Default::default()
        };
        store::update::<Opportunities>(app, principal(ctx), &scope, opportunity_id, version, fields)
            .await?
            .try_into()
    }
}

#[Object]
impl ContactRoleMutation {
    /// Adds a contact in a role to an opportunity if `opportunityVersion`
    /// is current.
    async fn add_opportunity_contact_role(
        &self,
        ctx: &Context<'_>,
        opportunity_id: ID,
        opportunity_version: i64,
        input: CreateOpportunityContactRoleInput,
    ) -> Result<Opportunity> {
        let change = RoleChange::Add {
            contact_id: input.contact_id.0,
            role: input.role,
            primary: input.is_primary,
        };
        Self::change(ctx, &opportunity_id, opportunity_version, change).await
    }

    /// Removes a contact role if its opportunity's `opportunityVersion` is
    /// current (removing the primary one clears `primaryContactId`).
    async fn remove_opportunity_contact_role(
        &self,
        ctx: &Context<'_>,
        id: ID,
        opportunity_version: i64,
    ) -> Result<Opportunity> {
        ids::check(&id, "ocr", "id")?;
        let opp = {
            let app = ctx.data_unchecked::<App>();
            let mut c = app.db.conn().await?;
            opportunity_of(&mut c.conn(), &id).await?
        };
        Self::change(ctx, &opp, opportunity_version, RoleChange::Remove(id.0)).await
    }
}
