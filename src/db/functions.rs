//! SQL functions from the migrations, typed for the query builder. Calling them through
//! the DSL (not SQL text) keeps the statements that use them prepared and cached.

use diesel::sql_types::{Text, Uuid};

diesel::define_sql_function! {
    /// Ids of the contacts whose name or an address matches a LIKE pattern, in the firm set
    /// for the transaction (see the crm_search migration for why it bypasses RLS). It
    /// returns a set: use it as `id.eq_any(diesel::select(cp_search_contact_ids(p)))`.
    fn cp_search_contact_ids(pattern: Text) -> Uuid;
}

diesel::define_sql_function! {
    /// Ids of the clients whose name matches a LIKE pattern, in the transaction's firm
    /// (a set, as above).
    fn cp_search_client_ids(pattern: Text) -> Uuid;
}

diesel::define_sql_function! {
    /// The members taking part in a conversation, in the order they were added.
    fn cp_conversation_members(firm: Uuid, conversation: Uuid) -> Array<Uuid>;
}

diesel::define_sql_function! {
    /// The contacts taking part in a conversation, in the order they were added.
    fn cp_conversation_contacts(firm: Uuid, conversation: Uuid) -> Array<Uuid>;
}

diesel::define_sql_function! {
    /// The member's role while the membership, the firm and (for a portal login) its
    /// contact's access all hold, or NULL.
    fn cp_member_role(firm: Uuid, member: Uuid) -> Nullable<Text>;
}

diesel::define_sql_function! {
    /// The role an access token's session still carries, or NULL.
    fn cp_session_role(firm: Uuid, member: Uuid, session: Uuid) -> Nullable<Text>;
}

diesel::define_sql_function! {
    /// A message's delivery over its channel (SMS), as JSON; NULL for hub-only messages.
    fn cp_message_delivery(firm: Uuid, message: Uuid) -> Nullable<Jsonb>;
}
