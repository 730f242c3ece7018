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
        reason -> Nullable<Text>,
    }
}

diesel::table! {
    products (id) {
        id -> Text,
        name -> Text,
        code -> Text,
        family -> Nullable<Text>,
        unit -> Nullable<Text>,
        description -> Nullable<Text>,
        active -> Bool,
        custom -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        version -> BigInt,
    }
}

diesel::table! {
    price_books (id) {
        id -> Text,
        name -> Text,
        currency -> Text,
        is_standard -> Bool,
        active -> Bool,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        version -> BigInt,
    }
}

diesel::table! {
    price_book_entries (id) {
        id -> Text,
        price_book_id -> Text,
        product_id -> Text,
        unit_price -> BigInt,
        currency -> Text,
        active -> Bool,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        version -> BigInt,
    }
}

diesel::table! {
    opportunity_line_items (id) {
        id -> Text,
        opportunity_id -> Text,
        product_id -> Text,
        price_book_entry_id -> Text,
        position -> BigInt,
        quantity_milli -> BigInt,
        list_price -> BigInt,
        unit_price -> BigInt,
        discount_bp -> BigInt,
        total -> BigInt,
        currency -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        version -> BigInt,
    }
}

diesel::table! {
    opportunity_contact_roles (id) {
        id -> Text,
        opportunity_id -> Text,
        contact_id -> Text,
        role -> Text,
        is_primary -> Bool,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        version -> BigInt,
    }
}

diesel::joinable!(users -> teams (team_id));

diesel::table! {
    accounts (id) {
        id -> Text,
        name -> Text,
        industry -> Nullable<Text>,
        size_band -> Nullable<Text>,
        website -> Nullable<Text>,
        phone -> Nullable<Text>,
        address -> Nullable<Text>,
        annual_revenue -> Nullable<BigInt>,
        revenue_currency -> Nullable<Text>,
        credit_limit -> Nullable<BigInt>,
        credit_currency -> Nullable<Text>,
        lifecycle_stage -> Text,
        rating -> Nullable<Text>,
        source -> Nullable<Text>,
        notes -> Nullable<Text>,
        owner_id -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        version -> BigInt,
        deleted_at -> Nullable<Timestamp>,
        deleted_by -> Nullable<Text>,
        custom -> Text,
    }
}

diesel::table! {
    account_stage_history (id) {
        id -> Text,
        account_id -> Text,
        from_stage -> Nullable<Text>,
        to_stage -> Text,
        changed_by -> Nullable<Text>,
        changed_at -> Timestamp,
    }
}

diesel::table! {
    contacts (id) {
        id -> Text,
        first_name -> Text,
        last_name -> Text,
        title -> Nullable<Text>,
        emails -> Text,
        phones -> Text,
        search_text -> Text,
        preferred_channel -> Nullable<Text>,
        language -> Nullable<Text>,
        account_id -> Nullable<Text>,
        owner_id -> Text,
        consent_state -> Text,
        consent_at -> Nullable<Timestamp>,
        consent_source -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        version -> BigInt,
        deleted_at -> Nullable<Timestamp>,
        deleted_by -> Nullable<Text>,
        email_key -> Nullable<Text>,
        custom -> Text,
    }
}

diesel::table! {
    tags (id) {
        id -> Text,
        name -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        version -> BigInt,
    }
}

diesel::table! {
    account_tags (account_id, tag_id) {
        account_id -> Text,
        tag_id -> Text,
    }
}

diesel::table! {
    contact_tags (contact_id, tag_id) {
        contact_id -> Text,
        tag_id -> Text,
    }
}

diesel::table! {
    activities (id) {
        id -> Text,
        kind -> Text,
        subject_type -> Text,
        subject_id -> Text,
        title -> Text,
        body -> Nullable<Text>,
        occurred_at -> Timestamp,
        duration_secs -> Nullable<BigInt>,
        outcome -> Nullable<Text>,
        participants -> Text,
        owner_id -> Text,
        assignee_id -> Nullable<Text>,
        due_at -> Nullable<Timestamp>,
        remind_at -> Nullable<Timestamp>,
        reminded_at -> Nullable<Timestamp>,
        completed_at -> Nullable<Timestamp>,
        completed_by -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        version -> BigInt,
        deleted_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    purchases (id) {
        id -> Text,
        account_id -> Text,
        contact_id -> Nullable<Text>,
        order_number -> Text,
        ordered_at -> Timestamp,
        amount_minor -> BigInt,
        currency -> Text,
        line_items -> Text,
        external_id -> Nullable<Text>,
        idempotency_key -> Text,
        created_by -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    jobs (id) {
        id -> Text,
        kind -> Text,
        status -> Text,
        owner_id -> Nullable<Text>,
        params -> Text,
        file_name -> Nullable<Text>,
        rows_done -> BigInt,
        created -> BigInt,
        updated -> BigInt,
        skipped -> BigInt,
        failed -> BigInt,
        message -> Nullable<Text>,
        result_path -> Nullable<Text>,
        cancel_requested -> Bool,
        created_at -> Timestamp,
        started_at -> Nullable<Timestamp>,
        finished_at -> Nullable<Timestamp>,
        heartbeat_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    job_errors (job_id, line, col) {
        job_id -> Text,
        line -> BigInt,
        col -> Text,
        message -> Text,
    }
}

diesel::table! {
    custom_field_defs (id) {
        id -> Text,
        entity_type -> Text,
        field_key -> Text,
        label -> Text,
        field_type -> Text,
        options -> Text,
        required -> Bool,
        default_value -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        version -> BigInt,
        deleted_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    merges (id) {
        id -> Text,
        entity_type -> Text,
        survivor_id -> Text,
        merged_ids -> Text,
        snapshot -> Text,
        moved -> Text,
        versions -> Text,
        merged_by -> Text,
        merged_at -> Timestamp,
        undone_at -> Nullable<Timestamp>,
        undone_by -> Nullable<Text>,
    }
}

diesel::table! {
    idempotency_keys (principal, idem_key) {
        principal -> Text,
        idem_key -> Text,
        claim_id -> Text,
        fingerprint -> Text,
        status -> Text,
        created_at -> Timestamp,
        locked_until -> Timestamp,
        expires_at -> Timestamp,
        response_status -> Nullable<BigInt>,
        response_headers -> Nullable<Text>,
        response_body -> Nullable<Text>,
    }
}

diesel::table! {
    pipelines (id) {
        id -> Text,
        name -> Text,
        position -> BigInt,
        active -> Bool,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        version -> BigInt,
        renewals -> Bool,
    }
}

diesel::table! {
    pipeline_stages (id) {
        id -> Text,
        pipeline_id -> Text,
        name -> Text,
        position -> BigInt,
        probability -> BigInt,
        forecast_category -> Text,
        kind -> Text,
        required_fields -> Text,
        rotting_days -> Nullable<BigInt>,
        active -> Bool,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        version -> BigInt,
        next_steps -> Text,
    }
}

diesel::table! {
    opportunities (id) {
        id -> Text,
        name -> Text,
        account_id -> Text,
        primary_contact_id -> Nullable<Text>,
        owner_id -> Text,
        pipeline_id -> Text,
        stage_id -> Text,
        amount -> Nullable<BigInt>,
        currency -> Nullable<Text>,
        close_date -> Nullable<Text>,
        probability -> BigInt,
        forecast_category -> Text,
        next_step -> Nullable<Text>,
        source -> Nullable<Text>,
        campaign_id -> Nullable<Text>,
        lost_reason -> Nullable<Text>,
        closed_at -> Nullable<Timestamp>,
        custom -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        version -> BigInt,
        deleted_at -> Nullable<Timestamp>,
        deleted_by -> Nullable<Text>,
        tags -> Text,
        stage_entered_at -> Timestamp,
        primary_quote_id -> Nullable<Text>,
    }
}

diesel::table! {
    opportunity_stale_marks (opportunity_id, entered_at) {
        opportunity_id -> Text,
        entered_at -> Timestamp,
        marked_at -> Timestamp,
    }
}

diesel::table! {
    opportunity_history (id) {
        id -> Text,
        opportunity_id -> Text,
        stage_changed -> Bool,
        changes -> Text,
        changed_by -> Nullable<Text>,
        changed_at -> Timestamp,
    }
}

diesel::table! {
    service_counters (name) {
        name -> Text,
        value -> BigInt,
    }
}

diesel::table! {
    tickets (id) {
        id -> Text,
        number -> Text,
        subject -> Text,
        description -> Nullable<Text>,
        contact_id -> Text,
        account_id -> Nullable<Text>,
        channel -> Text,
        priority -> Text,
        status -> Text,
        ticket_type -> Nullable<Text>,
        assignee_id -> Nullable<Text>,
        group_id -> Nullable<Text>,
        tags -> Text,
        custom -> Text,
        solved_at -> Nullable<Timestamp>,
        closed_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        version -> BigInt,
        deleted_at -> Nullable<Timestamp>,
        deleted_by -> Nullable<Text>,
    }
}

diesel::table! {
    ticket_comments (id) {
        id -> Text,
        ticket_id -> Text,
        author_id -> Nullable<Text>,
        body -> Text,
        internal -> Bool,
        created_at -> Timestamp,
        from_customer -> Bool,
    }
}

diesel::table! {
    sla_calendars (id) {
        id -> Text,
        name -> Text,
        time_zone -> Text,
        periods -> Text,
        holidays -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        version -> BigInt,
    }
}

diesel::table! {
    sla_policies (id) {
        id -> Text,
        name -> Text,
        position -> BigInt,
        active -> Bool,
        conditions -> Text,
        calendar_id -> Nullable<Text>,
        targets -> Text,
        warn_percent -> BigInt,
        escalation -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        version -> BigInt,
    }
}

diesel::table! {
    sla_clocks (id) {
        id -> Text,
        ticket_id -> Text,
        policy_id -> Text,
        policy_name -> Text,
        kind -> Text,
        target_minutes -> BigInt,
        calendar -> Text,
        warn_percent -> BigInt,
        escalation -> Text,
        state -> Text,
        started_at -> Timestamp,
        due_at -> Timestamp,
        warn_at -> Timestamp,
        paused_at -> Nullable<Timestamp>,
        paused_minutes -> BigInt,
        met_at -> Nullable<Timestamp>,
        warned_at -> Nullable<Timestamp>,
        breached_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    webhook_endpoints (id) {
        id -> Text,
        url -> Text,
        description -> Text,
        topics -> Text,
        fields -> Nullable<Text>,
        active -> Bool,
        status -> Text,
        status_reason -> Nullable<Text>,
        secret -> Text,
        previous_secret -> Nullable<Text>,
        previous_secret_until -> Nullable<Timestamp>,
        principal_kind -> Text,
        principal_id -> Text,
        owner_id -> Nullable<Text>,
        event_cursor -> BigInt,
        lease_owner -> Nullable<Text>,
        lease_until -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        version -> BigInt,
    }
}

diesel::table! {
    webhook_deliveries (id) {
        id -> Text,
        endpoint_id -> Text,
        message_id -> Text,
        event_seq -> Nullable<BigInt>,
        kind -> Text,
        payload -> Text,
        status -> Text,
        attempts -> BigInt,
        next_attempt_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        finished_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    webhook_attempts (id) {
        id -> Text,
        delivery_id -> Text,
        attempted_at -> Timestamp,
        status_code -> Nullable<BigInt>,
        latency_ms -> BigInt,
        error -> Nullable<Text>,
        response_excerpt -> Nullable<Text>,
        succeeded -> Bool,
    }
}

diesel::joinable!(job_errors -> jobs (job_id));
diesel::joinable!(purchases -> accounts (account_id));
diesel::joinable!(accounts -> users (owner_id));
diesel::joinable!(contacts -> accounts (account_id));
diesel::joinable!(account_tags -> accounts (account_id));
diesel::joinable!(account_tags -> tags (tag_id));
diesel::joinable!(contact_tags -> contacts (contact_id));
diesel::joinable!(contact_tags -> tags (tag_id));
diesel::joinable!(account_stage_history -> accounts (account_id));
diesel::joinable!(pipeline_stages -> pipelines (pipeline_id));
diesel::joinable!(opportunities -> accounts (account_id));
diesel::joinable!(opportunity_history -> opportunities (opportunity_id));
diesel::joinable!(ticket_comments -> tickets (ticket_id));
diesel::joinable!(webhook_deliveries -> webhook_endpoints (endpoint_id));
diesel::joinable!(webhook_attempts -> webhook_deliveries (delivery_id));
diesel::joinable!(price_book_entries -> price_books (price_book_id));
diesel::joinable!(price_book_entries -> products (product_id));
diesel::joinable!(opportunity_line_items -> opportunities (opportunity_id));
diesel::joinable!(opportunity_contact_roles -> opportunities (opportunity_id));
diesel::joinable!(lead_scores -> leads (lead_id));
diesel::table! {
    leads (id) {
        id -> Text,
        first_name -> Nullable<Text>,
        last_name -> Nullable<Text>,
        title -> Nullable<Text>,
        emails -> Text,
        phones -> Text,
        company -> Nullable<Text>,
        company_key -> Nullable<Text>,
        website -> Nullable<Text>,
        industry -> Nullable<Text>,
        size_band -> Nullable<Text>,
        country -> Nullable<Text>,
        region -> Nullable<Text>,
        city -> Nullable<Text>,
        source -> Text,
        campaign_id -> Nullable<Text>,
        status -> Text,
        status_reason -> Nullable<Text>,
        owner_id -> Nullable<Text>,
        team_id -> Nullable<Text>,
        tags -> Text,
        consent -> Text,
        matched_contact_id -> Nullable<Text>,
        duplicate_of -> Nullable<Text>,
        converted_at -> Nullable<Timestamp>,
        converted -> Nullable<Text>,
        custom -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        version -> BigInt,
        deleted_at -> Nullable<Timestamp>,
        deleted_by -> Nullable<Text>,
    }
}

diesel::table! {
    lead_forms (id) {
        id -> Text,
        form_key -> Text,
        name -> Text,
        active -> Bool,
        fields -> Text,
        allowed_origins -> Text,
        redirect_url -> Nullable<Text>,
        default_source -> Text,
        default_campaign_id -> Nullable<Text>,
        default_tags -> Text,
        owner_id -> Nullable<Text>,
        team_id -> Nullable<Text>,
        on_match -> Text,
        honeypot_field -> Nullable<Text>,
        dedupe_window_secs -> BigInt,
        created_by -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        version -> BigInt,
    }
}

diesel::table! {
    lead_form_submissions (form_id, email) {
        form_id -> Text,
        email -> Text,
        lead_id -> Nullable<Text>,
        submitted_at -> Timestamp,
    }
}

diesel::table! {
    scoring_rules (id) {
        id -> Text,
        name -> Text,
        kind -> Text,
        active -> Bool,
        field -> Nullable<Text>,
        operator -> Nullable<Text>,
        rule_values -> Text,
        event -> Nullable<Text>,
        points -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        version -> BigInt,
    }
}

diesel::table! {
    scoring_settings (id) {
        id -> Text,
        half_life_days -> BigInt,
        grade_a -> BigInt,
        grade_b -> BigInt,
        grade_c -> BigInt,
        grade_d -> BigInt,
        decay_period -> Nullable<BigInt>,
        updated_at -> Timestamp,
        version -> BigInt,
    }
}

diesel::table! {
    lead_scores (lead_id) {
        lead_id -> Text,
        fit -> BigInt,
        engagement -> Double,
        engagement_at -> Nullable<Timestamp>,
        score -> BigInt,
        grade -> Text,
        explanation -> Text,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    /// Lead assignment rules, first match by position wins.
    lead_assignment_rules (id) {
        id -> Text,
        position -> BigInt,
        name -> Text,
        active -> Bool,
        conditions -> Text,
        target_kind -> Text,
        target_user_id -> Nullable<Text>,
        team_id -> Nullable<Text>,
        open_lead_cap -> Nullable<BigInt>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        version -> BigInt,
    }
}
diesel::table! {
    /// A round-robin rule's place in its rotation.
    lead_round_robin (rule_id) {
        rule_id -> Text,
        last_user_id -> Nullable<Text>,
        turns -> BigInt,
        updated_at -> Timestamp,
    }
}
diesel::joinable!(lead_round_robin -> lead_assignment_rules (rule_id));
diesel::table! {
    quotes (id) {
        id -> Text,
        number -> Text,
        revision -> BigInt,
        revised_from -> Nullable<Text>,
        opportunity_id -> Text,
        account_id -> Text,
        name -> Text,
        status -> Text,
        valid_until -> Text,
        currency -> Nullable<Text>,
        lines -> Text,
        subtotal -> BigInt,
        discount_bp -> BigInt,
        discount -> BigInt,
        tax_bp -> BigInt,
        tax -> BigInt,
        total -> BigInt,
        billing_address -> Nullable<Text>,
        shipping_address -> Nullable<Text>,
        terms -> Nullable<Text>,
        sent_at -> Nullable<Timestamp>,
        decided_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        version -> BigInt,
    }
}

diesel::table! {
    contracts (id) {
        id -> Text,
        name -> Text,
        account_id -> Text,
        opportunity_id -> Nullable<Text>,
        quote_id -> Nullable<Text>,
        owner_id -> Text,
        status -> Text,
        start_date -> Text,
        end_date -> Text,
        value -> BigInt,
        currency -> Text,
        renewal_pipeline_id -> Nullable<Text>,
        renewal_notice_days -> BigInt,
        renewal_due_on -> Text,
        renewal_opportunity_id -> Nullable<Text>,
        activated_at -> Nullable<Timestamp>,
        ended_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        version -> BigInt,
        deleted_at -> Nullable<Timestamp>,
        deleted_by -> Nullable<Text>,
    }
}

diesel::table! {
    contract_renewals (contract_id) {
        contract_id -> Text,
        created_at -> Timestamp,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    opportunity_stale_marks,
    teams,
    lead_assignment_rules,
    lead_round_robin,
    users,
    revoked_tokens,
    api_keys,
    outbox,
    audit_log,
    accounts,
    account_stage_history,
    contacts,
    tags,
    account_tags,
    contact_tags,
    activities,
    purchases,
    jobs,
    job_errors,
    custom_field_defs,
    merges,
    pipelines,
    pipeline_stages,
    opportunities,
    opportunity_history,
    service_counters,
    scoring_rules,
    scoring_settings,
    lead_scores,
    tickets,
    ticket_comments,
    webhook_endpoints,
    webhook_deliveries,
    webhook_attempts,
    leads,
    lead_forms,
    lead_form_submissions,
    products,
    price_books,
    price_book_entries,
    opportunity_line_items,
    opportunity_contact_roles,
    quotes,
    contracts,
    contract_renewals,
);
