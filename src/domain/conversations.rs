//! Conversations and their messages (tenant tables). A message's `seq` is taken under the
//! conversation row's lock inside the transaction that stores it, so seqs are gapless per
//! conversation; the live layer publishes only after commit and refills any gap it sees
//! from here.

use chrono::{DateTime, Utc};
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Jsonb, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::pagination::{CreatedKey, Page, PageSpec, keyset_comparison, like_contains, past_time_key};
use super::{DomainError, FieldErrors, FirmId};
use crate::db::functions::{cp_conversation_contacts, cp_conversation_members, cp_message_delivery};
use crate::db::schema::{
    contacts, conversation_participants, conversation_reads, conversations, memberships, messages,
};

pub const MAX_BODY_CHARS: usize = 20_000;
pub const MAX_PARTICIPANTS: usize = 100;
pub const MAX_CLIENT_MSG_ID: usize = 100;
/// Messages returned by one history request at most.
pub const MAX_HISTORY: i64 = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Internal,
    Email,
    Sms,
    Portal,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Internal => "internal",
            Channel::Email => "email",
            Channel::Sms => "sms",
            Channel::Portal => "portal",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ConversationStatus {
    Open,
    Pending,
    Closed,
}

impl ConversationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConversationStatus::Open => "open",
            ConversationStatus::Pending => "pending",
            ConversationStatus::Closed => "closed",
        }
    }
}

/// Who is looking: a member (who sees every conversation of the firm) or a portal user
/// (who sees only those their contact takes part in).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Viewer {
    pub user_id: Uuid,
    /// Set for a portal (`client`) login: the contact it is.
    pub portal_contact: Option<Uuid>,
}

/// The contact a portal login is, if it is one (read under the firm's RLS).
pub async fn portal_contact_of(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    user_id: Uuid,
) -> Result<Option<Uuid>, DomainError> {
    Ok(memberships::table
        .filter(memberships::firm_id.eq(firm.into_uuid()))
        .filter(memberships::user_id.eq(user_id))
        .select(memberships::contact_id)
        .first::<Option<Uuid>>(conn)
        .await
        .optional()?
        .flatten())
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = conversations)]
struct ConversationRow {
    id: Uuid,
    subject: String,
    channel: String,
    status: String,
    assignee_user_id: Option<Uuid>,
    client_id: Option<Uuid>,
    created_by: Option<Uuid>,
    last_seq: i64,
    last_message_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    #[diesel(
        select_expression = cp_conversation_members(conversations::firm_id, conversations::id),
        select_expression_type = cp_conversation_members<conversations::firm_id, conversations::id>
    )]
    member_ids: Vec<Uuid>,
    #[diesel(
        select_expression = cp_conversation_contacts(conversations::firm_id, conversations::id),
        select_expression_type = cp_conversation_contacts<conversations::firm_id, conversations::id>
    )]
    contact_ids: Vec<Uuid>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Participants {
    /// Members (user ids) taking part.
    pub members: Vec<Uuid>,
    /// Contacts (the client's people) taking part.
    pub contacts: Vec<Uuid>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Conversation {
    pub id: Uuid,
    pub subject: String,
    #[schema(value_type = Channel)]
    pub channel: String,
    #[schema(value_type = ConversationStatus)]
    pub status: String,
    pub assignee_user_id: Option<Uuid>,
    pub client_id: Option<Uuid>,
    pub created_by: Option<Uuid>,
    pub participants: Participants,
    /// The newest message's seq (0 before the first message).
    pub last_seq: i64,
    #[serde(serialize_with = "crate::domain::timestamps::serialize_option")]
    pub last_message_at: Option<DateTime<Utc>>,
    /// Messages after the viewer's read receipt.
    pub unread: i64,
    #[serde(serialize_with = "crate::domain::timestamps::serialize")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::domain::timestamps::serialize")]
    pub updated_at: DateTime<Utc>,
}

impl Conversation {
    fn from_row(row: ConversationRow, last_read: i64) -> Self {
        Conversation {
            id: row.id,
            subject: row.subject,
            channel: row.channel,
            status: row.status,
            assignee_user_id: row.assignee_user_id,
            client_id: row.client_id,
            created_by: row.created_by,
            participants: Participants { members: row.member_ids, contacts: row.contact_ids },
            unread: (row.last_seq - last_read).max(0),
            last_seq: row.last_seq,
            last_message_at: row.last_message_at,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable, Serialize, Deserialize, utoipa::ToSchema)]
#[diesel(table_name = messages)]
pub struct Message {
    pub id: Uuid,
    pub conversation_id: Uuid,
    /// Position in the conversation: 1, 2, 3, ... without gaps.
    pub seq: i64,
    pub author_user_id: Option<Uuid>,
    pub author_contact_id: Option<Uuid>,
    pub body: String,
    pub client_msg_id: Option<String>,
    #[serde(serialize_with = "crate::domain::timestamps::serialize")]
    pub created_at: DateTime<Utc>,
    /// How the message travels over its channel (an SMS: direction, status, Twilio's error
    /// code and reason, segments, media); null for messages that stay inside the hub.
    #[diesel(
        select_expression = cp_message_delivery(messages::firm_id, messages::id),
        select_expression_type = cp_message_delivery<messages::firm_id, messages::id>
    )]
    #[diesel(sql_type = Nullable<Jsonb>)]
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub delivery: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default)]
pub struct NewConversation {
    pub subject: Option<String>,
    pub channel: Option<Channel>,
    pub member_ids: Vec<Uuid>,
    pub contact_ids: Vec<Uuid>,
    pub assignee_user_id: Option<Uuid>,
    pub client_id: Option<Uuid>,
}

fn check_subject(subject: &str, errors: &mut FieldErrors) -> String {
    let subject = subject.trim();
    if subject.is_empty() {
        errors.insert("subject".into(), "must not be empty".into());
    } else if subject.chars().count() > 300 {
        errors.insert("subject".into(), "must be at most 300 characters".into());
    }
    subject.to_owned()
}

/// Users who are active members (not portal logins) of the firm, among `ids`.
async fn active_members(conn: &mut AsyncPgConnection, firm: FirmId, ids: &[Uuid]) -> Result<Vec<Uuid>, DomainError> {
    Ok(memberships::table
        .filter(memberships::firm_id.eq(firm.into_uuid()))
        .filter(memberships::user_id.eq_any(ids))
        .filter(memberships::status.eq("active"))
        .filter(memberships::contact_id.is_null())
        .select(memberships::user_id)
        .load(conn)
        .await?)
}

async fn existing_contacts(conn: &mut AsyncPgConnection, firm: FirmId, ids: &[Uuid]) -> Result<Vec<Uuid>, DomainError> {
    Ok(contacts::table
        .filter(contacts::firm_id.eq(firm.into_uuid()))
        .filter(contacts::id.eq_any(ids))
        .select(contacts::id)
        .load(conn)
        .await?)
}

fn dedup(ids: &[Uuid]) -> Vec<Uuid> {
    let mut seen = std::collections::HashSet::new();
    ids.iter().copied().filter(|id| seen.insert(*id)).collect()
}

pub async fn create(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    viewer: Viewer,
    input: NewConversation,
) -> Result<Conversation, DomainError> {
    let mut errors = FieldErrors::default();
    let subject = check_subject(input.subject.as_deref().unwrap_or_default(), &mut errors);
    let channel = input.channel.unwrap_or(Channel::Internal);
    let mut members = dedup(&input.member_ids);
    let mut contact_ids = dedup(&input.contact_ids);
    if let Some(contact) = viewer.portal_contact {
        // A portal user starts a portal conversation with themselves in it and no other
        // contact: naming one is refused alike whether it exists or not, so the portal
        // learns nothing about the firm's other contacts.
        if contact_ids.iter().any(|c| *c != contact) {
            errors.insert("participants".into(), "a portal conversation includes only your own contact".into());
        }
        contact_ids = vec![contact];
        if channel != Channel::Portal {
            errors.insert("channel".into(), "portal users start portal conversations".into());
        }
        if input.assignee_user_id.is_some() || input.client_id.is_some() {
            errors.insert("assignee_user_id".into(), "set by the firm, not by a portal user".into());
        }
    } else if !members.contains(&viewer.user_id) {
        members.insert(0, viewer.user_id);
    }
    if members.len() + contact_ids.len() > MAX_PARTICIPANTS {
        errors.insert("participants".into(), "at most 100 participants".into());
    }
    DomainError::check(errors)?;
    let found = active_members(conn, firm, &members).await?;
    if let Some(missing) = members.iter().find(|m| !found.contains(m) && Some(**m) != Some(viewer.user_id)) {
        return Err(DomainError::invalid_field("participants", format!("{missing} is not an active member")));
    }
    let found = existing_contacts(conn, firm, &contact_ids).await?;
    if let Some(missing) = contact_ids.iter().find(|c| !found.contains(c)) {
        return Err(DomainError::invalid_field("participants", format!("{missing} is not a contact of this firm")));
    }
    if let Some(assignee) = input.assignee_user_id
        && active_members(conn, firm, &[assignee]).await?.is_empty()
    {
        return Err(DomainError::invalid_field("assignee_user_id", "is not an active member"));
    }
    if let Some(client) = input.client_id {
        super::clients::find(conn, firm, client)
            .await
            .map_err(DomainError::missing_as_invalid("client_id", "no such client"))?;
    }
    let id = Uuid::now_v7();
    diesel::insert_into(conversations::table)
        .values((
            conversations::firm_id.eq(firm.into_uuid()),
            conversations::id.eq(id),
            conversations::subject.eq(&subject),
            conversations::channel.eq(channel.as_str()),
            conversations::assignee_user_id.eq(input.assignee_user_id),
            conversations::client_id.eq(input.client_id),
            conversations::created_by.eq(viewer.user_id),
        ))
        .execute(conn)
        .await?;
    let now = Utc::now();
    let rows: Vec<_> = members
        .iter()
        .map(|m| (Some(*m), None))
        .chain(contact_ids.iter().map(|c| (None, Some(*c))))
        .enumerate()
        .map(|(i, (user, contact)): (usize, (Option<Uuid>, Option<Uuid>))| {
            (
                conversation_participants::firm_id.eq(firm.into_uuid()),
                conversation_participants::conversation_id.eq(id),
                conversation_participants::id.eq(Uuid::now_v7()),
                conversation_participants::user_id.eq(user),
                conversation_participants::contact_id.eq(contact),
                // Strictly increasing so the participants keep the order given.
                conversation_participants::added_at.eq(now + chrono::Duration::microseconds(i as i64)),
            )
        })
        .collect();
    diesel::insert_into(conversation_participants::table).values(rows).execute(conn).await?;
    find(conn, firm, viewer, id).await
}

type Condition = Box<dyn BoxableExpression<conversations::table, diesel::pg::Pg, SqlType = diesel::sql_types::Bool>>;

/// Restricts a query to what the viewer may see: everything for a member, the
/// conversations their contact takes part in for a portal user.
fn visible_to(viewer: Viewer, firm: FirmId) -> Condition {
    match viewer.portal_contact {
        // Already implied by every query's own firm filter; a condition that the query
        // builder can cache, unlike SQL text.
        None => Box::new(conversations::firm_id.eq(firm.into_uuid())),
        Some(contact) => Box::new(
            conversations::id.eq_any(
                conversation_participants::table
                    .filter(conversation_participants::firm_id.eq(firm.into_uuid()))
                    .filter(conversation_participants::contact_id.eq(contact))
                    .select(conversation_participants::conversation_id),
            ),
        ),
    }
}

async fn last_read(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    user: Uuid,
    ids: &[Uuid],
) -> Result<std::collections::HashMap<Uuid, i64>, DomainError> {
    Ok(conversation_reads::table
        .filter(conversation_reads::firm_id.eq(firm.into_uuid()))
        .filter(conversation_reads::user_id.eq(user))
        .filter(conversation_reads::conversation_id.eq_any(ids))
        .select((conversation_reads::conversation_id, conversation_reads::last_read_seq))
        .load::<(Uuid, i64)>(conn)
        .await?
        .into_iter()
        .collect())
}

/// How far one reader has read a conversation.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReadPosition {
    pub user_id: Uuid,
    /// The newest seq this reader has marked read.
    pub last_read_seq: i64,
}

/// Everyone's read position in a conversation the caller has already been shown (read
/// receipts: who has seen which message). One statement.
pub async fn read_positions(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    id: Uuid,
) -> Result<Vec<ReadPosition>, DomainError> {
    Ok(conversation_reads::table
        .filter(conversation_reads::firm_id.eq(firm.into_uuid()))
        .filter(conversation_reads::conversation_id.eq(id))
        .select((conversation_reads::user_id, conversation_reads::last_read_seq))
        .order(conversation_reads::user_id)
        .load::<(Uuid, i64)>(conn)
        .await?
        .into_iter()
        .map(|(user_id, last_read_seq)| ReadPosition { user_id, last_read_seq })
        .collect())
}

/// One conversation the viewer may see; another firm's, or one a portal user is not in,
/// does not exist.
pub async fn find(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    viewer: Viewer,
    id: Uuid,
) -> Result<Conversation, DomainError> {
    let mut query = conversations::table
        .filter(conversations::firm_id.eq(firm.into_uuid()))
        .filter(conversations::id.eq(id))
        .select(ConversationRow::as_select())
        .into_boxed();
    query = query.filter(visible_to(viewer, firm));
    let row = query.first(conn).await.optional()?.ok_or(DomainError::NotFound("conversation"))?;
    let read = last_read(conn, firm, viewer.user_id, &[id]).await?;
    Ok(Conversation::from_row(row, read.get(&id).copied().unwrap_or(0)))
}

/// Checks that the viewer may see the conversation, and returns its newest seq.
pub async fn check_visible(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    viewer: Viewer,
    id: Uuid,
) -> Result<i64, DomainError> {
    let mut query = conversations::table
        .filter(conversations::firm_id.eq(firm.into_uuid()))
        .filter(conversations::id.eq(id))
        .select(conversations::last_seq)
        .into_boxed();
    query = query.filter(visible_to(viewer, firm));
    query.first(conn).await.optional()?.ok_or(DomainError::NotFound("conversation"))
}

#[derive(Debug, Clone, Default)]
pub struct ConversationFilter {
    pub status: Option<ConversationStatus>,
    pub channel: Option<Channel>,
    pub assignee_user_id: Option<Uuid>,
    /// A member's user id or a contact's id.
    pub participant: Option<Uuid>,
    pub client_id: Option<Uuid>,
    /// Substring of the subject.
    pub q: Option<String>,
}

/// Newest first, by creation: a conversation keeps its place in the list while messages
/// arrive, so paging through never skips or repeats one.
pub async fn list(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    viewer: Viewer,
    filter: &ConversationFilter,
    spec: &PageSpec<CreatedKey>,
) -> Result<Page<Conversation, CreatedKey>, DomainError> {
    let mut query = conversations::table
        .filter(conversations::firm_id.eq(firm.into_uuid()))
        .select(ConversationRow::as_select())
        .into_boxed();
    query = query.filter(visible_to(viewer, firm));
    if let Some(status) = filter.status {
        query = query.filter(conversations::status.eq(status.as_str()));
    }
    if let Some(channel) = filter.channel {
        query = query.filter(conversations::channel.eq(channel.as_str()));
    }
    if let Some(assignee) = filter.assignee_user_id {
        query = query.filter(conversations::assignee_user_id.eq(assignee));
    }
    if let Some(client) = filter.client_id {
        query = query.filter(conversations::client_id.eq(client));
    }
    if let Some(participant) = filter.participant {
        query = query.filter(
            conversations::id.eq_any(
                conversation_participants::table
                    .filter(conversation_participants::firm_id.eq(firm.into_uuid()))
                    .filter(
                        conversation_participants::user_id
                            .eq(participant)
                            .or(conversation_participants::contact_id.eq(participant)),
                    )
                    .select(conversation_participants::conversation_id),
            ),
        );
    }
    if let Some(q) = filter.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        query = query.filter(conversations::subject_key.like(like_contains(&q.to_lowercase())));
    }
    let mut ascending = false;
    if let Some((direction, key)) = &spec.position {
        let (op, fetch_ascending) = keyset_comparison(false, *direction);
        ascending = fetch_ascending;
        query = query.filter(past_time_key("conversations.created_at, conversations.id", op, key.at, key.id));
    }
    query = if ascending {
        query.order((conversations::created_at.asc(), conversations::id.asc()))
    } else {
        query.order((conversations::created_at.desc(), conversations::id.desc()))
    };
    let rows: Vec<ConversationRow> = query.limit(spec.fetch_limit()).load(conn).await?;
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let read = last_read(conn, firm, viewer.user_id, &ids).await?;
    let items = rows
        .into_iter()
        .map(|row| {
            let seen = read.get(&row.id).copied().unwrap_or(0);
            Conversation::from_row(row, seen)
        })
        .collect();
    Ok(Page::from_rows(items, spec, |c: &Conversation| CreatedKey { at: c.created_at, id: c.id }))
}

#[derive(Debug, Clone, Default)]
pub struct ConversationChanges {
    pub subject: Option<String>,
    pub status: Option<ConversationStatus>,
    pub assignee_user_id: Option<Option<Uuid>>,
}

pub async fn update(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    viewer: Viewer,
    id: Uuid,
    changes: ConversationChanges,
) -> Result<(Conversation, Conversation), DomainError> {
    let before = find(conn, firm, viewer, id).await?;
    let mut errors = FieldErrors::default();
    let subject = changes.subject.as_deref().map(|s| check_subject(s, &mut errors));
    DomainError::check(errors)?;
    if let Some(Some(assignee)) = changes.assignee_user_id
        && active_members(conn, firm, &[assignee]).await?.is_empty()
    {
        return Err(DomainError::invalid_field("assignee_user_id", "is not an active member"));
    }
    diesel::update(conversations::table)
        .filter(conversations::firm_id.eq(firm.into_uuid()))
        .filter(conversations::id.eq(id))
        .set((
            subject.map(|s| conversations::subject.eq(s)),
            changes.status.map(|s| conversations::status.eq(s.as_str())),
            changes.assignee_user_id.map(|a| conversations::assignee_user_id.eq(a)),
            conversations::updated_at.eq(Utc::now()),
        ))
        .execute(conn)
        .await?;
    let after = find(conn, firm, viewer, id).await?;
    Ok((before, after))
}

/// A message to store.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub body: String,
    /// The sender's own id for the message; a resend with the same id returns the first copy.
    pub client_msg_id: Option<String>,
}

pub fn check_message(input: &NewMessage) -> Result<(), DomainError> {
    let mut errors = FieldErrors::default();
    if input.body.trim().is_empty() {
        errors.insert("body".into(), "must not be empty".into());
    } else if input.body.chars().count() > MAX_BODY_CHARS {
        errors.insert("body".into(), "must be at most 20000 characters".into());
    }
    if let Some(id) = &input.client_msg_id
        && (id.is_empty() || id.chars().count() > MAX_CLIENT_MSG_ID)
    {
        errors.insert("client_msg_id".into(), "must be 1 to 100 characters".into());
    }
    DomainError::check(errors)
}

/// Whether a send stored a new message or found the first copy of a resend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    New,
    Duplicate,
}

/// What `cp_post_message` answers: the message (absent when nothing was stored), whether it
/// is new or the first copy of a resend, the conversation's channel, and whether an open
/// ticket follows the conversation.
#[derive(QueryableByName)]
struct PostedMessage {
    #[diesel(sql_type = Text)]
    outcome: String,
    #[diesel(sql_type = Text)]
    channel: String,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    open_ticket: bool,
    #[diesel(embed)]
    message: Option<Message>,
}

/// Stores a message with the conversation's next seq. The caller's transaction must
/// commit before the message is published. Closed conversations reopen on a new message.
pub async fn post_message(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    viewer: Viewer,
    conversation: Uuid,
    input: NewMessage,
) -> Result<(Message, Stored), DomainError> {
    check_message(&input)?;
    let posted = crate::db::cached_query(
        "SELECT outcome, channel, open_ticket, id, conversation_id, seq, author_user_id, author_contact_id, \
                body, client_msg_id, created_at, delivery \
           FROM cp_post_message($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind::<SqlUuid, _>(firm.into_uuid())
    .bind::<SqlUuid, _>(conversation)
    .bind::<SqlUuid, _>(viewer.user_id)
    .bind::<Nullable<SqlUuid>, _>(viewer.portal_contact)
    .bind::<SqlUuid, _>(Uuid::now_v7())
    .bind::<Text, _>(&input.body)
    .bind::<Nullable<Text>, _>(&input.client_msg_id)
    .bind::<Timestamptz, _>(Utc::now())
    .get_result::<PostedMessage>(conn)
    .await
    .optional()?
    .ok_or(DomainError::NotFound("conversation"))?;
    let mut message = match posted.outcome.as_str() {
        "new" => posted.message.ok_or(DomainError::NotFound("message"))?,
        "duplicate" => return Ok((posted.message.ok_or(DomainError::NotFound("message"))?, Stored::Duplicate)),
        _ => return Err(DomainError::Forbidden("SMS conversations are answered by the firm's members".into())),
    };
    let (is_sms, channel) = (posted.channel == Channel::Sms.as_str(), posted.channel);
    let turn = match viewer.portal_contact {
        Some(contact) => super::tickets::Turn::Customer(Some(contact)),
        None => super::tickets::Turn::Agent(viewer.user_id),
    };
    if posted.open_ticket {
        super::tickets::on_message(conn, firm, conversation, turn, message.created_at).await?;
    }
    if is_sms {
        // Queued in this transaction: a refusal (opted out, no sender) stores nothing.
        message.delivery = Some(super::sms::queue_outbound(conn, firm, &message).await?);
    } else if channel == Channel::Email.as_str() && viewer.portal_contact.is_none() {
        message.delivery = Some(super::email::queue_outbound(conn, firm, &message, false).await?);
    }
    Ok((message, Stored::New))
}

/// Stores a message the hub itself writes (an automatic answer such as the SMS help text),
/// with no author and the conversation's next seq. No read receipt: no member wrote it.
/// (Inbound SMS are filed by `cp_sms_receive`, in one round trip.)
pub async fn append_hub_message(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    conversation: Uuid,
    body: &str,
) -> Result<Message, DomainError> {
    append_message(conn, firm, conversation, None, body, false).await
}

/// Stores a message from outside the hub's members (an inbound email's contact) or from
/// the hub itself (`author_contact` None), with the conversation's next seq. `reopen`
/// moves a pending or closed conversation back to open: the client has written again.
pub async fn append_message(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    conversation: Uuid,
    author_contact: Option<Uuid>,
    body: &str,
    reopen: bool,
) -> Result<Message, DomainError> {
    if body.chars().count() > MAX_BODY_CHARS {
        return Err(DomainError::invalid_field("body", "must be at most 20000 characters"));
    }
    crate::db::cached_query(
        "WITH next AS ( \
             UPDATE conversations SET last_seq = last_seq + 1, last_message_at = $4, updated_at = $4, \
                    status = CASE WHEN $7 THEN 'open' ELSE status END \
              WHERE firm_id = $1 AND id = $2 RETURNING last_seq \
         ), stored AS ( \
             INSERT INTO messages (firm_id, conversation_id, seq, id, author_contact_id, body, created_at) \
             SELECT $1, $2, next.last_seq, $3, $6, $5, $4 FROM next \
             RETURNING id, conversation_id, seq, author_user_id, author_contact_id, body, client_msg_id, created_at \
         ) \
         SELECT stored.*, NULL::jsonb AS delivery FROM stored",
    )
    .bind::<SqlUuid, _>(firm.into_uuid())
    .bind::<SqlUuid, _>(conversation)
    .bind::<SqlUuid, _>(Uuid::now_v7())
    .bind::<Timestamptz, _>(Utc::now())
    .bind::<Text, _>(body)
    .bind::<Nullable<SqlUuid>, _>(author_contact)
    .bind::<diesel::sql_types::Bool, _>(reopen)
    .get_result::<Message>(conn)
    .await
    .optional()?
    .ok_or(DomainError::NotFound("conversation"))
}

/// How a message travels over its channel (SMS or email), as the API shows it; None for
/// messages that stay inside the hub.
pub async fn delivery_of(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    message: Uuid,
) -> Result<Option<serde_json::Value>, DomainError> {
    Ok(diesel::select(crate::db::functions::cp_message_delivery(firm.into_uuid(), message)).get_result(conn).await?)
}

/// One message by id, with its delivery.
pub async fn message_by_id(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    id: Uuid,
) -> Result<Option<Message>, DomainError> {
    Ok(messages::table
        .filter(messages::firm_id.eq(firm.into_uuid()))
        .filter(messages::id.eq(id))
        .select(Message::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// Messages with `after_seq < seq < before_seq`, oldest first, at most `limit`. Without
/// `after_seq` and with `before_seq`, the newest ones before it (scrolling back).
pub async fn history(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    conversation: Uuid,
    after_seq: Option<i64>,
    before_seq: Option<i64>,
    limit: i64,
) -> Result<Vec<Message>, DomainError> {
    let limit = limit.clamp(1, MAX_HISTORY);
    let mut query = messages::table
        .filter(messages::firm_id.eq(firm.into_uuid()))
        .filter(messages::conversation_id.eq(conversation))
        .select(Message::as_select())
        .into_boxed();
    if let Some(after) = after_seq {
        query = query.filter(messages::seq.gt(after));
    }
    if let Some(before) = before_seq {
        query = query.filter(messages::seq.lt(before));
    }
    if after_seq.is_none() && before_seq.is_some() {
        let mut newest: Vec<Message> = query.order(messages::seq.desc()).limit(limit).load(conn).await?;
        newest.reverse();
        Ok(newest)
    } else {
        Ok(query.order(messages::seq.asc()).limit(limit).load(conn).await?)
    }
}

/// Records that `user` has read up to `seq` (never moving backwards); returns the stored
/// position.
pub async fn mark_read(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    user: Uuid,
    conversation: Uuid,
    seq: i64,
) -> Result<i64, DomainError> {
    let stored: i64 = diesel::insert_into(conversation_reads::table)
        .values((
            conversation_reads::firm_id.eq(firm.into_uuid()),
            conversation_reads::conversation_id.eq(conversation),
            conversation_reads::user_id.eq(user),
            conversation_reads::last_read_seq.eq(seq),
        ))
        .on_conflict((conversation_reads::firm_id, conversation_reads::conversation_id, conversation_reads::user_id))
        .do_update()
        .set((
            conversation_reads::last_read_seq
                .eq(sql::<BigInt>("GREATEST(conversation_reads.last_read_seq, excluded.last_read_seq)")),
            conversation_reads::read_at.eq(Utc::now()),
        ))
        .returning(conversation_reads::last_read_seq)
        .get_result(conn)
        .await?;
    Ok(stored)
}

/// A read receipt from a viewer: the seq must exist in the conversation.
pub async fn read_up_to(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    viewer: Viewer,
    conversation: Uuid,
    seq: i64,
) -> Result<i64, DomainError> {
    let last = check_visible(conn, firm, viewer, conversation).await?;
    if seq < 0 || seq > last {
        return Err(DomainError::invalid_field("seq", format!("must be between 0 and {last}")));
    }
    mark_read(conn, firm, viewer.user_id, conversation, seq).await
}
