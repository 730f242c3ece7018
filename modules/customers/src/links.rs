//! GraphQL fields of a contact, among them the one link that points up the
//! crate's dependency direction (`Contact.account`). Files below depend
//! one way (`activities <- contacts <- accounts`); this file sits above
//! them all, so that the schema's graph (an account has contacts, a contact
//! has an account) needs no circle between files.

use async_graphql::{ComplexObject, Context};
use crm_core::app::App;
use crm_core::error::Result;
use crm_core::identity::graphql::{User, visible_user};
use crm_core::paging::Page;
use serde_json::Value;

use crate::accounts::{Account, account_by_id};
use crate::contacts::{Consent, Contact};
use crate::tags::{self, Tag};
use crate::values::{Channel, ConsentState};

#[ComplexObject]
impl Contact {
    /// How they like to be reached.
    async fn preferred_channel(&self) -> Result<Option<Channel>> {
        self.preferred_channel_raw
            .as_deref()
            .map(Channel::from_stored)
            .transpose()
    }

    /// Marketing consent.
    async fn consent(&self) -> Result<Consent> {
        let (state, at, source) = &self.consent_raw;
        Ok(Consent {
            state: ConsentState::from_stored(state)?,
            at: *at,
            source: source.clone(),
        })
    }

    /// Custom field values by key (those you may read; see
    /// `customFieldDefinitions`).
    async fn custom(&self, ctx: &Context<'_>) -> Result<async_graphql::Json<Value>> {
        crate::loaders::custom_values(ctx, "Contact", &self.custom_raw).await
    }

    /// Their company (null if none or outside your scope).
    async fn account(&self, ctx: &Context<'_>) -> Result<Option<Account>> {
        let Some(id) = &self.account_id else {
            return Ok(None);
        };
        crm_core::error::visible(account_by_id(ctx, id).await)
    }

    /// The owning user (null if you may not see that user).
    async fn owner(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        visible_user(ctx, &self.owner_id).await
    }

    /// Order history, newest first.
    async fn purchases(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Page<crate::purchases::Purchase>> {
        crate::purchases::page(ctx, crate::purchases::Of::Contact(&self.id), first, after).await
    }

    /// The interaction timeline, newest first.
    async fn timeline(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Page<crate::activities::Activity>> {
        crate::activities::timeline_page(
            ctx,
            crm_core::entity::SubjectType::of("Contact")?,
            &self.id,
            first,
            after,
        )
        .await
    }

    /// Tags, by name.
    async fn tags(&self, ctx: &Context<'_>) -> Result<Vec<Tag>> {
        if let Some(l) = ctx.data_opt::<crate::loaders::Loaders>() {
            let rows = l
                .contact_tags
                .load_one(self.id.0.clone())
                .await?
                .unwrap_or_default();
            return Ok(rows.into_iter().map(Tag::from).collect());
        }
        let app = ctx.data_unchecked::<App>();
        let mut c = app.db.conn().await?;
        let rows = tags::for_contacts(&mut c.conn(), std::slice::from_ref(&self.id.0)).await?;
        Ok(rows.into_iter().map(|(_, t)| t.into()).collect())
    }
}
