//! The one `table!` schema shared by every crate, in portable SQL types: Text
//! ids, BigInt counters and money, Timestamp (UTC), Bool, Text JSON. Both
//! migration trees (`migrations/postgres`, `migrations/sqlite`) produce it.
#![allow(missing_docs)]

diesel::table! {
    teams (id) {
        id -> Text,
        name -> Text,
        parent_id -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        version -> BigInt,
    }
}

diesel::table! {
    users (id) {
        id -> Text,
        email -> Text,
        display_name -> Text,
        password_hash -> Nullable<Text>,
        active -> Bool,
        roles -> Text,
        team_id -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        version -> BigInt,
    }
}

diesel::table! {
    revoked_tokens (jti) {
        jti -> Text,
        user_id -> Text,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    api_keys (id) {
        id -> Text,
        name -> Text,
        prefix -> Text,
        key_hash -> Text,
        role -> Text,
        created_by -> Text,
        created_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    outbox (seq) {
        seq -> BigInt,
        topic -> Text,
        entity_type -> Text,
        entity_id -> Text,
        kind -> Text,
        payload -> Text,
        actor -> Nullable<Text>,
        created_at -> Timestamp,
        owner_id -> Nullable<Text>,
        team_id -> Nullable<Text>,
    }
}

diesel::table! {
    audit_log (id) {
        id -> BigInt,
        at -> Timestamp,
        actor_kind -> Text,
        actor_id -> Nullable<Text>,
        credential -> Nullable<Text>,
        entity_type -> Text,
        entity_id -> Text,
        action -> Text,
        changes -> Text,
    }
}

diesel::joinable!(users -> teams (team_id));
diesel::allow_tables_to_appear_in_same_query!(
    teams,
    users,
    revoked_tokens,
    api_keys,
    outbox,
    audit_log
);
