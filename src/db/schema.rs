// Mirrors migrations/; regenerate with `diesel print-schema` or edit alongside a migration.

diesel::table! {
    audit_events (firm_id, id) {
        firm_id -> Uuid,
        id -> Uuid,
        occurred_at -> Timestamptz,
        actor_type -> Text,
        actor_id -> Nullable<Uuid>,
        action -> Text,
        target_type -> Nullable<Text>,
        target_id -> Nullable<Text>,
        result -> Text,
        request_id -> Nullable<Text>,
        ip -> Nullable<Text>,
        metadata -> Jsonb,
    }
}

diesel::table! {
    firms (id) {
        id -> Uuid,
        slug -> Text,
        name -> Text,
        status -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    memberships (firm_id, user_id) {
        firm_id -> Uuid,
        user_id -> Uuid,
        role -> Text,
        status -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        contact_id -> Nullable<Uuid>,
        portal_client_id -> Nullable<Uuid>,
    }
}

diesel::table! {
    users (id) {
        id -> Uuid,
        email -> Text,
        display_name -> Text,
        password_hash -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        mfa_secret -> Nullable<Text>,
        mfa_pending_secret -> Nullable<Text>,
        mfa_enabled -> Bool,
        mfa_last_step -> Nullable<Int8>,
    }
}

diesel::table! {
    user_recovery_codes (user_id, code_hash) {
        user_id -> Uuid,
        code_hash -> Text,
        used_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    auth_sessions (firm_id, id) {
        firm_id -> Uuid,
        id -> Uuid,
        user_id -> Uuid,
        created_at -> Timestamptz,
        revoked_at -> Nullable<Timestamptz>,
        revoked_reason -> Nullable<Text>,
    }
}

diesel::table! {
    refresh_tokens (firm_id, id) {
        firm_id -> Uuid,
        id -> Uuid,
        session_id -> Uuid,
        token_hash -> Text,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        used_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    operators (id) {
        id -> Uuid,
        email -> Text,
        display_name -> Text,
        password_hash -> Text,
        active -> Bool,
        created_at -> Timestamptz,
        mfa_secret -> Nullable<Text>,
        mfa_last_step -> Nullable<BigInt>,
        session_key -> Uuid,
    }
}

diesel::table! {
    break_glass_grants (id) {
        id -> Uuid,
        target_firm_id -> Uuid,
        requested_by -> Uuid,
        reason -> Text,
        minutes -> Int4,
        created_at -> Timestamptz,
        approved_by -> Nullable<Uuid>,
        approved_at -> Nullable<Timestamptz>,
        expires_at -> Nullable<Timestamptz>,
        first_activated_at -> Nullable<Timestamptz>,
        revoked_at -> Nullable<Timestamptz>,
        revoked_by_operator -> Nullable<Uuid>,
        revoked_by_user -> Nullable<Uuid>,
    }
}

diesel::table! {
    platform_audit_events (id) {
        id -> Uuid,
        occurred_at -> Timestamptz,
        operator_id -> Nullable<Uuid>,
        action -> Text,
        target_firm_id -> Nullable<Uuid>,
        target_type -> Nullable<Text>,
        target_id -> Nullable<Text>,
        result -> Text,
        request_id -> Nullable<Text>,
        ip -> Nullable<Text>,
        metadata -> Jsonb,
    }
}

diesel::table! {
    auth_throttle (key_hash) {
        key_hash -> Text,
        failures -> Int4,
        window_started_at -> Timestamptz,
    }
}

diesel::joinable!(audit_events -> firms (firm_id));
diesel::joinable!(memberships -> firms (firm_id));
diesel::joinable!(memberships -> users (user_id));

diesel::joinable!(auth_sessions -> users (user_id));
diesel::joinable!(break_glass_grants -> firms (target_firm_id));
diesel::joinable!(user_recovery_codes -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    audit_events,
    auth_sessions,
    auth_throttle,
    break_glass_grants,
    firms,
    memberships,
    operators,
    platform_audit_events,
    refresh_tokens,
    user_recovery_codes,
    users,
);

diesel::table! {
    jobs (firm_id, id) {
        firm_id -> Uuid,
        id -> Uuid,
        kind -> Text,
        payload -> Jsonb,
        state -> Text,
        run_at -> Timestamptz,
        attempts -> Int4,
        max_attempts -> Int4,
        last_error -> Nullable<Text>,
        lease_owner -> Nullable<Text>,
        lease_expires_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        finished_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    webhook_endpoints (firm_id, id) {
        firm_id -> Uuid,
        id -> Uuid,
        url -> Text,
        description -> Text,
        event_types -> Array<Text>,
        active -> Bool,
        secret -> Text,
        failure_streak -> Int4,
        disabled_reason -> Nullable<Text>,
        deleted_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    webhook_deliveries (firm_id, id) {
        firm_id -> Uuid,
        id -> Uuid,
        endpoint_id -> Uuid,
        event_type -> Text,
        payload -> Jsonb,
        state -> Text,
        attempts -> Int4,
        last_status_code -> Nullable<Int4>,
        last_latency_ms -> Nullable<Int4>,
        last_error -> Nullable<Text>,
        created_at -> Timestamptz,
        last_attempt_at -> Nullable<Timestamptz>,
        delivered_at -> Nullable<Timestamptz>,
    }
}

diesel::allow_tables_to_appear_in_same_query!(jobs, webhook_endpoints, webhook_deliveries);

diesel::table! {
    clients (firm_id, id) {
        firm_id -> Uuid,
        id -> Uuid,
        name -> Text,
        name_key -> Text,
        status -> Text,
        industry -> Nullable<Text>,
        address -> Nullable<Jsonb>,
        tags -> Array<Text>,
        owner_user_id -> Nullable<Uuid>,
        custom_fields -> Jsonb,
        archived_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    contacts (firm_id, id) {
        firm_id -> Uuid,
        id -> Uuid,
        first_name -> Text,
        last_name -> Text,
        name_key -> Text,
        title -> Nullable<Text>,
        client_id -> Nullable<Uuid>,
        portal_access -> Bool,
        archived_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        needs_review -> Bool,
        emails -> Array<Text>,
        phones -> Array<Text>,
        sms_opted_out -> Array<Text>,
    }
}

diesel::table! {
    contact_emails (firm_id, email) {
        firm_id -> Uuid,
        email -> Text,
        contact_id -> Uuid,
        position -> Int2,
        bouncing_since -> Nullable<Timestamptz>,
        bounce_status -> Nullable<Text>,
    }
}

diesel::table! {
    contact_phones (firm_id, contact_id, phone) {
        firm_id -> Uuid,
        contact_id -> Uuid,
        phone -> Text,
        position -> Int2,
    }
}

diesel::allow_tables_to_appear_in_same_query!(clients, contacts, contact_emails, contact_phones);

diesel::table! {
    leads (firm_id, id) {
        firm_id -> Uuid,
        id -> Uuid,
        source -> Nullable<Text>,
        status -> Text,
        first_name -> Text,
        last_name -> Text,
        company -> Nullable<Text>,
        email -> Nullable<Text>,
        phone -> Nullable<Text>,
        estimated_value_minor -> Nullable<Int8>,
        currency -> Nullable<Text>,
        converted_at -> Nullable<Timestamptz>,
        client_id -> Nullable<Uuid>,
        contact_id -> Nullable<Uuid>,
        prospect_id -> Nullable<Uuid>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    prospects (firm_id, id) {
        firm_id -> Uuid,
        id -> Uuid,
        client_id -> Uuid,
        contact_id -> Nullable<Uuid>,
        name -> Text,
        stage -> Text,
        value_minor -> Int8,
        currency -> Text,
        expected_close_date -> Nullable<Date>,
        probability -> Nullable<Int2>,
        owner_user_id -> Nullable<Uuid>,
        lead_id -> Nullable<Uuid>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::allow_tables_to_appear_in_same_query!(leads, prospects);

diesel::table! {
    proposals (firm_id, id) {
        firm_id -> Uuid,
        id -> Uuid,
        prospect_id -> Uuid,
        title -> Text,
        currency -> Text,
        status -> Text,
        current_version -> Int4,
        sent_at -> Nullable<Timestamptz>,
        decided_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    proposal_versions (firm_id, proposal_id, version) {
        firm_id -> Uuid,
        proposal_id -> Uuid,
        version -> Int4,
        line_items -> Jsonb,
        subtotal_minor -> Int8,
        tax_minor -> Int8,
        total_minor -> Int8,
        created_at -> Timestamptz,
    }
}

diesel::allow_tables_to_appear_in_same_query!(proposals, proposal_versions);

diesel::table! {
    client_notes (firm_id, id) {
        firm_id -> Uuid,
        id -> Uuid,
        client_id -> Uuid,
        author_user_id -> Nullable<Uuid>,
        body -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    conversations (firm_id, id) {
        firm_id -> Uuid,
        id -> Uuid,
        subject -> Text,
        subject_key -> Text,
        channel -> Text,
        status -> Text,
        assignee_user_id -> Nullable<Uuid>,
        client_id -> Nullable<Uuid>,
        created_by -> Nullable<Uuid>,
        last_seq -> Int8,
        last_message_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        tags -> Array<Text>,
    }
}

diesel::table! {
    conversation_participants (firm_id, conversation_id, id) {
        firm_id -> Uuid,
        conversation_id -> Uuid,
        id -> Uuid,
        user_id -> Nullable<Uuid>,
        contact_id -> Nullable<Uuid>,
        added_at -> Timestamptz,
    }
}

diesel::table! {
    messages (firm_id, conversation_id, seq) {
        firm_id -> Uuid,
        conversation_id -> Uuid,
        seq -> Int8,
        id -> Uuid,
        author_user_id -> Nullable<Uuid>,
        author_contact_id -> Nullable<Uuid>,
        body -> Text,
        client_msg_id -> Nullable<Text>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    conversation_reads (firm_id, conversation_id, user_id) {
        firm_id -> Uuid,
        conversation_id -> Uuid,
        user_id -> Uuid,
        last_read_seq -> Int8,
        read_at -> Timestamptz,
    }
}

diesel::table! {
    realtime_tickets (firm_id, ticket_hash) {
        firm_id -> Uuid,
        ticket_hash -> Text,
        user_id -> Uuid,
        session_id -> Uuid,
        expires_at -> Timestamptz,
    }
}

diesel::allow_tables_to_appear_in_same_query!(conversations, conversation_participants, messages, conversation_reads);

diesel::table! {
    finance_settings (firm_id) {
        firm_id -> Uuid,
        invoice_pattern -> Text,
        credit_note_pattern -> Text,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    document_sequences (firm_id, kind) {
        firm_id -> Uuid,
        kind -> Text,
        last_value -> Int8,
    }
}

diesel::table! {
    invoices (firm_id, id) {
        firm_id -> Uuid,
        id -> Uuid,
        client_id -> Uuid,
        number -> Nullable<Text>,
        status -> Text,
        currency -> Text,
        issue_date -> Date,
        due_date -> Date,
        payment_terms -> Nullable<Text>,
        notes -> Nullable<Text>,
        line_items -> Jsonb,
        subtotal_minor -> Int8,
        discount_minor -> Int8,
        tax_minor -> Int8,
        total_minor -> Int8,
        paid_minor -> Int8,
        credited_minor -> Int8,
        sent_at -> Nullable<Timestamptz>,
        voided_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    payments (firm_id, id) {
        firm_id -> Uuid,
        id -> Uuid,
        invoice_id -> Uuid,
        amount_minor -> Int8,
        method -> Text,
        received_on -> Date,
        reference -> Nullable<Text>,
        refund_of -> Nullable<Uuid>,
        created_by -> Nullable<Uuid>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    credit_notes (firm_id, id) {
        firm_id -> Uuid,
        id -> Uuid,
        invoice_id -> Uuid,
        number -> Text,
        amount_minor -> Int8,
        reason -> Text,
        created_by -> Nullable<Uuid>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    idempotency_keys (firm_id, scope, key) {
        firm_id -> Uuid,
        scope -> Text,
        key -> Text,
        request_hash -> Text,
        status -> Int2,
        response -> Jsonb,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    stripe_payment_intents (firm_id, id) {
        firm_id -> Uuid,
        id -> Text,
        invoice_id -> Uuid,
        amount_minor -> Int8,
        currency -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    stripe_events (firm_id, id) {
        firm_id -> Uuid,
        id -> Text,
        kind -> Text,
        outcome -> Text,
        received_at -> Timestamptz,
    }
}

diesel::allow_tables_to_appear_in_same_query!(invoices, payments, credit_notes);

diesel::table! {
    sms_settings (firm_id) {
        firm_id -> Uuid,
        account_sid -> Text,
        auth_token_sealed -> Text,
        public_base_url -> Text,
        help_text -> Text,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    sms_numbers (firm_id, id) {
        firm_id -> Uuid,
        id -> Uuid,
        phone_number -> Nullable<Text>,
        messaging_service_sid -> Nullable<Text>,
        label -> Nullable<Text>,
        per_second -> Int4,
        next_slot_at -> Timestamptz,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    sms_addresses (address) {
        address -> Text,
        routed_firm_id -> Uuid,
        sms_number_id -> Uuid,
    }
}

diesel::table! {
    sms_opt_outs (firm_id, phone_number) {
        firm_id -> Uuid,
        phone_number -> Text,
        keyword -> Text,
        opted_out_at -> Timestamptz,
    }
}

diesel::table! {
    sms_threads (firm_id, conversation_id) {
        firm_id -> Uuid,
        conversation_id -> Uuid,
        remote_number -> Text,
        sms_number_id -> Uuid,
    }
}

diesel::table! {
    sms_messages (firm_id, message_id) {
        firm_id -> Uuid,
        message_id -> Uuid,
        conversation_id -> Uuid,
        direction -> Text,
        twilio_sid -> Nullable<Text>,
        from_number -> Nullable<Text>,
        to_number -> Text,
        sms_number_id -> Nullable<Uuid>,
        messaging_service_sid -> Nullable<Text>,
        status -> Text,
        status_rank -> Int2,
        error_code -> Nullable<Int4>,
        error_message -> Nullable<Text>,
        segments -> Nullable<Int4>,
        media -> Jsonb,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    sms_status_callbacks (firm_id, id) {
        firm_id -> Uuid,
        id -> Uuid,
        twilio_sid -> Text,
        status -> Text,
        status_rank -> Int2,
        error_code -> Nullable<Int4>,
        received_at -> Timestamptz,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    sms_settings,
    sms_numbers,
    sms_opt_outs,
    sms_threads,
    sms_messages,
    sms_status_callbacks,
);

diesel::table! {
    business_calendars (firm_id, id) {
        firm_id -> Uuid,
        id -> Uuid,
        name -> Text,
        time_zone -> Text,
        always_open -> Bool,
        windows -> Jsonb,
        holidays -> Jsonb,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    tickets (firm_id, id) {
        firm_id -> Uuid,
        id -> Uuid,
        subject -> Text,
        status -> Text,
        priority -> Text,
        assignee_user_id -> Nullable<Uuid>,
        team -> Nullable<Text>,
        tags -> Array<Text>,
        requester_contact_id -> Nullable<Uuid>,
        conversation_id -> Nullable<Uuid>,
        created_by -> Nullable<Uuid>,
        first_response_at -> Nullable<Timestamptz>,
        last_customer_message_at -> Nullable<Timestamptz>,
        last_agent_response_at -> Nullable<Timestamptz>,
        solved_at -> Nullable<Timestamptz>,
        closed_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        sla_breached_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    ticket_events (firm_id, ticket_id, id) {
        firm_id -> Uuid,
        ticket_id -> Uuid,
        id -> Uuid,
        kind -> Text,
        actor_type -> Text,
        actor_id -> Nullable<Uuid>,
        detail -> Jsonb,
        at -> Timestamptz,
    }
}

diesel::allow_tables_to_appear_in_same_query!(tickets, ticket_events);

diesel::table! {
    sla_policies (firm_id, id) {
        firm_id -> Uuid,
        id -> Uuid,
        name -> Text,
        position -> Int4,
        active -> Bool,
        conditions -> Jsonb,
        targets -> Jsonb,
        business_calendar_id -> Nullable<Uuid>,
        pause_statuses -> Array<Text>,
        warning_percent -> Int4,
        restart_resolution_on_reopen -> Bool,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        notice_calendar_id -> Nullable<Uuid>,
    }
}

diesel::allow_tables_to_appear_in_same_query!(sla_policies, business_calendars);

diesel::table! {
    sla_clocks (firm_id, ticket_id, metric) {
        firm_id -> Uuid,
        ticket_id -> Uuid,
        metric -> Text,
        policy_id -> Nullable<Uuid>,
        target_seconds -> Int8,
        elapsed_seconds -> Int8,
        running_since -> Nullable<Timestamptz>,
        paused_seconds -> Int8,
        paused_since -> Nullable<Timestamptz>,
        state -> Text,
        breached_at -> Nullable<Timestamptz>,
        ended_at -> Nullable<Timestamptz>,
        due_at -> Nullable<Timestamptz>,
        warn_at -> Nullable<Timestamptz>,
        warned_at -> Nullable<Timestamptz>,
        started_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    availability_schedules (firm_id, user_id) {
        firm_id -> Uuid,
        user_id -> Uuid,
        time_zone -> Text,
        windows -> Jsonb,
        overrides -> Jsonb,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    booking_links (firm_id, id) {
        firm_id -> Uuid,
        id -> Uuid,
        slug -> Text,
        title -> Text,
        member_ids -> Array<Uuid>,
        assignment -> Text,
        duration_minutes -> Int4,
        buffer_before_minutes -> Int4,
        buffer_after_minutes -> Int4,
        min_notice_minutes -> Int4,
        window_days -> Int4,
        slot_interval_minutes -> Int4,
        questions -> Jsonb,
        requires_confirmation -> Bool,
        active -> Bool,
        created_by -> Nullable<Uuid>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    bookings (firm_id, id) {
        firm_id -> Uuid,
        id -> Uuid,
        link_id -> Uuid,
        member_user_id -> Uuid,
        starts_at -> Timestamptz,
        ends_at -> Timestamptz,
        status -> Text,
        invitee_name -> Text,
        invitee_email -> Text,
        invitee_time_zone -> Text,
        answers -> Jsonb,
        ical_uid -> Text,
        ical_sequence -> Int4,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        cancelled_at -> Nullable<Timestamptz>,
    }
}

diesel::allow_tables_to_appear_in_same_query!(bookings, booking_links);

diesel::table! {
    calendar_events (firm_id, id) {
        firm_id -> Uuid,
        id -> Uuid,
        user_id -> Uuid,
        title -> Text,
        starts_at -> Timestamptz,
        ends_at -> Timestamptz,
        time_zone -> Text,
        rrule -> Nullable<Text>,
        exdates -> Array<Timestamptz>,
        busy -> Bool,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    calendar_feeds (firm_id, user_id) {
        firm_id -> Uuid,
        user_id -> Uuid,
        secret_hash -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    mailboxes (firm_id, id) {
        firm_id -> Uuid,
        id -> Uuid,
        name -> Text,
        address -> Text,
        imap_host -> Text,
        imap_port -> Int4,
        imap_tls -> Text,
        imap_username -> Text,
        imap_password_sealed -> Text,
        folders -> Array<Text>,
        smtp_host -> Nullable<Text>,
        smtp_port -> Nullable<Int4>,
        smtp_tls -> Nullable<Text>,
        smtp_username -> Nullable<Text>,
        smtp_password_sealed -> Nullable<Text>,
        poll_interval_secs -> Int4,
        mark_seen -> Bool,
        enabled -> Bool,
        auto_acknowledge -> Nullable<Text>,
        state -> Text,
        state_reason -> Nullable<Text>,
        state_changed_at -> Timestamptz,
        last_sync_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    mailbox_folders (firm_id, mailbox_id, folder) {
        firm_id -> Uuid,
        mailbox_id -> Uuid,
        folder -> Text,
        uidvalidity -> Int8,
        last_uid -> Int8,
        synced_at -> Timestamptz,
    }
}

diesel::table! {
    email_settings (firm_id) {
        firm_id -> Uuid,
        closed_reply -> Text,
        subject_window_hours -> Int4,
        auto_reply_period_hours -> Int4,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    // Columns read and written only through SQL (threading headers, positions, raw
    // headers) are left out: the macro takes at most 32.
    email_messages (firm_id, id) {
        firm_id -> Uuid,
        id -> Uuid,
        direction -> Text,
        mailbox_id -> Nullable<Uuid>,
        folder -> Nullable<Text>,
        dedupe_key -> Text,
        message_id -> Nullable<Text>,
        thread_index -> Nullable<Text>,
        subject -> Text,
        from_address -> Nullable<Text>,
        from_name -> Nullable<Text>,
        to_addresses -> Array<Text>,
        cc_addresses -> Array<Text>,
        sent_at -> Nullable<Timestamptz>,
        size_bytes -> Int8,
        text_body -> Text,
        html_body -> Nullable<Text>,
        triage -> Nullable<Text>,
        triage_reason -> Nullable<Text>,
        bounced -> Nullable<Jsonb>,
        conversation_id -> Nullable<Uuid>,
        chat_message_id -> Nullable<Uuid>,
        contact_id -> Nullable<Uuid>,
        status -> Text,
        error_message -> Nullable<Text>,
        attempts -> Int4,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        answers_email_id -> Nullable<Uuid>,
    }
}

diesel::table! {
    email_blobs (firm_id, sha256) {
        firm_id -> Uuid,
        sha256 -> Text,
        size_bytes -> Int8,
        content -> Bytea,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    email_parts (firm_id, email_id, position) {
        firm_id -> Uuid,
        email_id -> Uuid,
        position -> Int4,
        filename -> Nullable<Text>,
        content_type -> Text,
        disposition -> Text,
        content_id -> Nullable<Text>,
        size_bytes -> Int8,
        sha256 -> Nullable<Text>,
        oversize -> Bool,
    }
}

diesel::table! {
    email_rules (firm_id, id) {
        firm_id -> Uuid,
        id -> Uuid,
        position -> Int4,
        name -> Text,
        enabled -> Bool,
        conditions -> Jsonb,
        actions -> Jsonb,
        stop -> Bool,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    mailboxes,
    mailbox_folders,
    email_settings,
    email_messages,
    email_blobs,
    email_parts,
    email_rules
);
