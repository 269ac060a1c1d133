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
    }
}

diesel::joinable!(audit_events -> firms (firm_id));
diesel::joinable!(memberships -> firms (firm_id));
diesel::joinable!(memberships -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(audit_events, firms, memberships, users);
