//! The module's value types: a ticket's channel, priority, status (with the
//! allowed transitions) and type.

use async_graphql::Enum;
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
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stored text.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// From the stored text (INTERNAL if the database holds
            /// something else).
            pub fn from_stored(s: &str) -> Result<$name> {
                Self::parse(s).ok_or_else(|| {
                    Error::Internal(format!(concat!("unknown ", stringify!($name), " {}"), s))
                })
            }

            /// From text as a person writes it (any case, spaces or
            /// hyphens for underscores), None if it is no value.
            pub fn parse(s: &str) -> Option<$name> {
                let key = s.trim().to_uppercase().replace([' ', '-'], "_");
                Self::ALL.iter().copied().find(|v| v.as_str() == key)
            }

            /// The values, for messages.
            pub fn names() -> String {
                Self::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
            }
        }
    };
}

stored_enum!(
    /// How a ticket came in.
    TicketChannel {
        /// An email.
        Email = "EMAIL",
        /// A web form.
        Web = "WEB",
        /// A chat.
        Chat = "CHAT",
        /// A phone call, logged by an agent.
        Phone = "PHONE",
        /// Another system, through the API.
        Api = "API",
    }
);

stored_enum!(
    /// How urgent a ticket is.
    TicketPriority {
        /// Drop everything.
        Urgent = "URGENT",
        /// Soon.
        High = "HIGH",
        /// In turn.
        Normal = "NORMAL",
        /// When there is time.
        Low = "LOW",
    }
);

stored_enum!(
    /// Where a ticket is in its life.
    TicketStatus {
        /// Not yet looked at.
        New = "NEW",
        /// Being worked.
        Open = "OPEN",
        /// Waiting for the customer.
        Pending = "PENDING",
        /// Waiting for a third party.
        OnHold = "ON_HOLD",
        /// Answered; the customer may still reopen it.
        Solved = "SOLVED",
        /// Done for good.
        Closed = "CLOSED",
    }
);

stored_enum!(
    /// What kind of request a ticket is.
    TicketType {
        /// A question.
        Question = "QUESTION",
        /// Something is broken for this customer.
        Incident = "INCIDENT",
        /// The cause behind incidents.
        Problem = "PROBLEM",
        /// Work to do.
        Task = "TASK",
    }
);

impl TicketStatus {
    /// The statuses a ticket in this status may move to: nothing goes back
    /// to NEW; a solved ticket reopens or closes; a closed one stays
    /// closed (a follow-up is a new ticket).
    pub fn next(self) -> &'static [TicketStatus] {
        use TicketStatus::*;
        match self {
            New => &[Open, Pending, OnHold, Solved],
            Open => &[Pending, OnHold, Solved],
            Pending => &[Open, OnHold, Solved],
            OnHold => &[Open, Pending, Solved],
            Solved => &[Open, Closed],
            Closed => &[],
        }
    }

    /// VALIDATION on `status` unless `self` may move to `to` (staying is
    /// always allowed).
    pub fn check_move(self, to: TicketStatus) -> Result<()> {
        if self == to || self.next().contains(&to) {
            return Ok(());
        }
        let allowed = match self.next() {
            [] => "none: a closed ticket stays closed".to_owned(),
            next => next
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        };
        Err(Error::invalid(
            "status",
            format!(
                "cannot move from {} to {} (allowed from {}: {allowed})",
                self.as_str(),
                to.as_str(),
                self.as_str()
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::TicketStatus::*;

    #[test]
    fn transitions() {
        assert!(New.check_move(Open).is_ok());
        assert!(Solved.check_move(Closed).is_ok());
        assert!(Open.check_move(Open).is_ok());
        assert!(Closed.check_move(Open).is_err());
        assert!(Open.check_move(New).is_err());
        assert!(Pending.check_move(Closed).is_err());
        assert_eq!(super::TicketStatus::parse("on hold"), Some(OnHold));
    }
}
