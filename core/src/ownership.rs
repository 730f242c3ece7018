//! How each resource type's rows are owned, declared once by the crate that
//! owns the type, so row scope is derived in one place (`access::row_filter`
//! and `apply_row_filter!`) instead of by hand in module code.
//!
//! - [`Owner::Column`]: the row's own `owner_id` (the default for types no
//!   crate declares: users, teams, API keys, jobs).
//! - [`Owner::Through`]: the row belongs to its parent's owner (a purchase
//!   through its account); the parent type's table and key column are the
//!   ones passed to `apply_row_filter!(…, through = …)`.
//! - [`Owner::Shared`]: nobody owns the rows (tags, a shared vocabulary):
//!   an `own` or `team` scope matches no row, only `all` does.
//!
//! A type with an `assignee` additionally lets a policy grant the scope
//! `assigned` (`p, support, Activity, update:assigned, allow`): the rows
//! assigned to the caller, on top of (or instead of) the owner scope.
//!
//! An API key owns no rows of most types (its `own` scope matches nothing).
//! A type declared [`Ownership::owned_by_keys`] stores the creating key's
//! id in its owner column when a key creates a row, and a key's `own` scope
//! is the rows it created (webhook endpoints: an integrator's key manages
//! its own endpoints, never a user's).
//!
//! A type routed to a `group` (a team working the row, such as a ticket's
//! support group) lets a policy grant the scope `group` (`p, support,
//! Ticket, read:group, allow`): the rows whose group is the caller's team
//! or a team below it, again on top of the owner scope.

/// Who owns a row of a type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// The row's own owner column.
    Column,
    /// The owner of the parent record of this type.
    Through(&'static str),
    /// Nobody: only an `all` scope matches rows.
    Shared,
}

/// One type's declaration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ownership {
    /// The resource type (`Purchase`).
    pub ty: &'static str,
    /// How its rows are owned.
    pub owner: Owner,
    /// Whether rows name an assignee, which the scope `assigned` matches.
    pub assignee: bool,
    /// Whether an API key owns the rows it created.
    pub keys_own: bool,
    /// Whether rows name a team working them, which the scope `group`
    /// matches.
    pub group: bool,
}

impl Ownership {
    /// Rows owned through their own owner column.
    pub const fn column(ty: &'static str) -> Ownership {
        Ownership {
            ty,
            owner: Owner::Column,
            assignee: false,
            keys_own: false,
            group: false,
        }
    }

    /// Rows owned by their `parent` record's owner.
    pub const fn through(ty: &'static str, parent: &'static str) -> Ownership {
        Ownership {
            ty,
            owner: Owner::Through(parent),
            assignee: false,
            keys_own: false,
            group: false,
        }
    }

    /// Rows nobody owns.
    pub const fn shared(ty: &'static str) -> Ownership {
        Ownership {
            ty,
            owner: Owner::Shared,
            assignee: false,
            keys_own: false,
            group: false,
        }
    }

    /// The same, with an assignee relation (scope `assigned`).
    pub const fn with_assignee(self) -> Ownership {
        Ownership {
            assignee: true,
            ..self
        }
    }

    /// The same, where an API key owns the rows it created (their owner
    /// column holds the key's id).
    pub const fn owned_by_keys(self) -> Ownership {
        Ownership {
            keys_own: true,
            ..self
        }
    }

    /// The same, with a group relation (scope `group`).
    pub const fn with_group(self) -> Ownership {
        Ownership {
            group: true,
            ..self
        }
    }

    /// How rows of `ty` are owned, in words (`crm policy explain`).
    pub fn describe(&self, ty: &str) -> String {
        let owner = match self.owner {
            Owner::Column => "its owner".to_owned(),
            Owner::Through(parent) => format!("the owner of its {parent}"),
            Owner::Shared => "nobody (own and team scopes match no row)".to_owned(),
        };
        let assignee = if self.assignee {
            "; the scope `assigned` matches rows assigned to the caller"
        } else {
            ""
        };
        let keys = if self.keys_own {
            "; an API key owns the rows it created"
        } else {
            ""
        };
        let group = if self.group {
            "; the scope `group` matches rows routed to the caller's team or a team below it"
        } else {
            ""
        };
        format!("a {ty} row belongs to {owner}{assignee}{group}{keys}")
    }
}
