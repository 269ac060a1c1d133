//! SMS: the firm's Twilio settings and senders (owners and admins), and the two webhooks
//! Twilio calls, inbound messages and status callbacks. Webhooks carry no login: each is
//! proven by its `X-Twilio-Signature`, checked with the auth token of the firm the message
//! is for, and stored before it is answered, so a message Twilio was told we have is never
//! lost.

use super::body::JsonObject;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use scoped_futures::ScopedFutureExt;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::AppState;
use super::ctx::{Audit, FirmCtx};
use super::envelope;
use super::error::{ApiError, ErrorBody};
use crate::bus::live;
use crate::domain::FirmId;
use crate::domain::permissions::Permission;
use crate::domain::sms::{self, Inbound, Media, NumberInput, Received, SettingsInput, SmsNumber, StoredSettings};
use crate::ingest::twilio::{self as signatures, param};
use crate::outbound::twilio::{self, Account, TwilioError};

/// The firm's auth token; a server whose keys do not open it (a key removed before
/// resealing, nodes with different keys) answers 503 and says why in its log.
fn open_token(state: &AppState, firm: FirmId, settings: &StoredSettings) -> Result<SecretString, ApiError> {
    state.secret_box()?.open(&settings.auth_token_sealed, &sms::token_context(firm)).map_err(|err| {
        tracing::error!(error = %err, firm = %firm.into_uuid(), "a stored Twilio token does not open");
        ApiError::unavailable("the firm's stored Twilio credentials cannot be opened on this server")
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SmsSettingsView {
    pub account_sid: String,
    /// Always true once set: the token itself is sealed and never returned.
    pub auth_token_set: bool,
    pub public_base_url: String,
    /// Sent in answer to HELP or INFO; empty sends nothing.
    pub help_text: String,
    /// Give Twilio this as the messaging webhook (POST) of each number or service.
    pub inbound_url: String,
    /// Where the hub asks Twilio to report each sent message's status.
    pub status_callback_url: String,
    pub updated_at: DateTime<Utc>,
}

fn view(firm: FirmId, settings: StoredSettings) -> SmsSettingsView {
    SmsSettingsView {
        inbound_url: twilio::inbound_url(&settings.public_base_url),
        status_callback_url: twilio::status_callback_url(&settings.public_base_url, firm),
        account_sid: settings.account_sid,
        auth_token_set: true,
        public_base_url: settings.public_base_url,
        help_text: settings.help_text,
        updated_at: settings.updated_at,
    }
}

/// The firm's Twilio settings.
#[utoipa::path(
    get, path = "/api/v1/sms/settings", operation_id = "get_sms_settings", tag = "sms", security(("bearer" = [])),
    responses(
        (status = 200, description = "The settings (the auth token is never returned)", body = SmsSettingsView),
        (status = 404, description = "SMS is not set up", body = ErrorBody),
    )
)]
pub async fn get_settings(ctx: FirmCtx) -> Result<HttpResponse, ApiError> {
    let settings = ctx.tx(Permission::IntegrationsManage, async |conn, firm| sms::settings(conn, firm).await).await?;
    let settings = settings.ok_or_else(|| ApiError::NotFound("SMS is not set up for this firm".into()))?;
    Ok(envelope::ok(view(ctx.firm(), settings)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SmsSettingsBody {
    /// AC followed by 32 hex digits.
    pub account_sid: String,
    /// Required the first time; omitted, the stored token stays. Sealed at rest.
    #[schema(value_type = Option<String>)]
    pub auth_token: Option<SecretString>,
    /// The address Twilio reaches this hub at (through any proxy), e.g.
    /// `https://hub.example.com`; signatures are checked against it.
    pub public_base_url: String,
    #[serde(default)]
    pub help_text: String,
}

/// Sets the firm's Twilio account.
#[utoipa::path(
    put, path = "/api/v1/sms/settings", operation_id = "put_sms_settings", tag = "sms", security(("bearer" = [])),
    request_body = SmsSettingsBody,
    responses(
        (status = 200, description = "Saved", body = SmsSettingsView),
        (status = 400, description = "Invalid field", body = ErrorBody),
        (status = 409, description = "A new account SID while senders proven against the old one remain", body = ErrorBody),
        (status = 503, description = "No secrets key configured on the server", body = ErrorBody),
    )
)]
pub async fn put_settings(ctx: FirmCtx, body: JsonObject<SmsSettingsBody>) -> Result<HttpResponse, ApiError> {
    ctx.require(Permission::IntegrationsManage).await?;
    let body = body.into_inner();
    let token = body.auth_token.as_ref().map(|t| t.expose_secret().trim().to_owned());
    sms::check_settings(&body.account_sid, token.as_deref(), &body.public_base_url, &body.help_text)?;
    let firm = ctx.firm();
    let sealed = match token {
        Some(token) => Some(
            ctx.state()
                .await?
                .secret_box()?
                .seal(&token, &sms::token_context(firm))
                .map_err(|e| ApiError::internal(anyhow::anyhow!(e)))?,
        ),
        None => None,
    };
    let input = SettingsInput {
        account_sid: body.account_sid,
        auth_token_sealed: sealed,
        public_base_url: body.public_base_url,
        help_text: body.help_text,
    };
    let audit = Audit::new("sms.settings_changed").metadata(serde_json::json!({
        "account_sid": input.account_sid,
        "auth_token_changed": input.auth_token_sealed.is_some(),
    }));
    let saved = ctx
        .audited(Permission::IntegrationsManage, audit, async |conn, firm| {
            sms::save_settings(conn, firm, input.clone()).await
        })
        .await?;
    Ok(envelope::ok(view(firm, saved)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SmsNumberList {
    pub data: Vec<SmsNumber>,
    #[schema(value_type = Object)]
    pub meta: serde_json::Value,
}

/// The firm's senders, oldest first (the first one starts new conversations).
#[utoipa::path(
    get, path = "/api/v1/sms/numbers", tag = "sms", security(("bearer" = [])),
    responses(
        (status = 200, description = "Senders", body = SmsNumberList),
    )
)]
pub async fn list_numbers(ctx: FirmCtx) -> Result<HttpResponse, ApiError> {
    let numbers =
        ctx.tx(Permission::IntegrationsManage, async |conn, firm| sms::list_numbers(conn, firm).await).await?;
    Ok(envelope::whole_list(numbers))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSmsNumberBody {
    /// The number, any common format (stored E.164).
    pub phone_number: Option<String>,
    /// A Messaging Service (MG...): messages go out through it, and inbound messages to
    /// any number in its pool reach this firm.
    pub messaging_service_sid: Option<String>,
    pub label: Option<String>,
    /// Messages per second (default 1, as for a long code).
    pub per_second: Option<i32>,
}

/// Adds a sender, once Twilio confirms the firm's account owns it. A number or service
/// belongs to one firm.
#[utoipa::path(
    post, path = "/api/v1/sms/numbers", tag = "sms", security(("bearer" = [])),
    request_body = NewSmsNumberBody,
    responses(
        (status = 201, description = "Added", body = SmsNumber),
        (status = 400, description = "Invalid field, or not owned by the firm's Twilio account", body = ErrorBody),
        (status = 409, description = "SMS not set up, or the sender is registered already", body = ErrorBody),
        (status = 503, description = "Twilio could not be asked", body = ErrorBody),
    )
)]
pub async fn add_number(ctx: FirmCtx, body: JsonObject<NewSmsNumberBody>) -> Result<HttpResponse, ApiError> {
    ctx.require(Permission::IntegrationsManage).await?;
    let (state, firm) = (ctx.state().await?, ctx.firm());
    let body = body.into_inner();
    let input = sms::check_number(
        NumberInput {
            phone_number: body.phone_number,
            messaging_service_sid: body.messaging_service_sid,
            label: body.label,
            per_second: body.per_second,
        },
        &state.settings().crm.default_phone_region,
    )?;
    let settings = ctx.tx(Permission::IntegrationsManage, async |conn, firm| sms::settings(conn, firm).await).await?;
    let settings = settings.ok_or_else(|| ApiError::Conflict("set up SMS first (PUT /api/v1/sms/settings)".into()))?;
    let token = open_token(state, firm, &settings)?;
    let account = Account { sid: &settings.account_sid, token: &token };
    let twilio_settings = &state.settings().twilio;
    let unreachable = |err: TwilioError| {
        tracing::warn!(error = %err, "Twilio could not confirm a sender");
        ApiError::unavailable(format!("Twilio could not confirm the sender: {err}"))
    };
    if let Some(number) = &input.phone_number
        && !twilio::owns_number(twilio_settings, &account, number).await.map_err(unreachable)?
    {
        return Err(ApiError::invalid_field("phone_number", "the firm's Twilio account does not own this number"));
    }
    if let Some(service) = &input.messaging_service_sid
        && !twilio::owns_service(twilio_settings, &account, service).await.map_err(unreachable)?
    {
        return Err(ApiError::invalid_field(
            "messaging_service_sid",
            "the firm's Twilio account has no such Messaging Service",
        ));
    }
    let audit = Audit::new("sms.number_added").target_of("sms_number", |n: &SmsNumber| n.id);
    let number = ctx
        .audited(Permission::IntegrationsManage, audit, async |conn, firm| {
            sms::add_number(conn, firm, input.clone()).await
        })
        .await?;
    Ok(envelope::created(number))
}

/// Removes a sender: its number stops routing here; conversations that replied from it
/// use the firm's first sender next.
#[utoipa::path(
    delete, path = "/api/v1/sms/numbers/{id}", tag = "sms", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Sender id")),
    responses(
        (status = 200, description = "Removed", body = SmsNumber),
        (status = 404, description = "No such sender in this firm", body = ErrorBody),
    )
)]
pub async fn remove_number(ctx: FirmCtx, path: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let audit = Audit::new("sms.number_removed").target("sms_number", id);
    let number = ctx
        .audited(Permission::IntegrationsManage, audit, async |conn, firm| sms::remove_number(conn, firm, id).await)
        .await?;
    Ok(envelope::ok(number))
}

// ---------------------------------------------------------------------------------------
// Webhooks

/// Twilio's parameters, from a form body or (with `bodySHA256`) a JSON one.
fn webhook_params(req: &HttpRequest, body: &[u8]) -> Result<(Vec<(String, String)>, bool), ApiError> {
    let content_type = req.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let media = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    match media.as_str() {
        "application/x-www-form-urlencoded" | "" => Ok((signatures::form_params(body), false)),
        "application/json" => signatures::json_params(body)
            .map(|params| (params, true))
            .ok_or_else(|| ApiError::invalid_field("body", "must be a JSON object")),
        other => Err(ApiError::UnsupportedMediaType(format!(
            "Twilio posts application/x-www-form-urlencoded (or JSON with bodySHA256), not {other}"
        ))),
    }
}

fn forbidden_signature() -> ApiError {
    ApiError::Forbidden("the X-Twilio-Signature does not match this request".into())
}

/// The firm's settings and opened token, if the request carries the firm's signature.
async fn verified(
    state: &AppState,
    req: &HttpRequest,
    firm: FirmId,
    params: &[(String, String)],
    json_body: Option<&[u8]>,
) -> Result<StoredSettings, ApiError> {
    let settings =
        state.db().firm_tx(firm, |conn| async move { sms::settings(conn, firm).await }.scope_boxed()).await?;
    let Some(settings) = settings else {
        tracing::warn!(firm = %firm.into_uuid(), "Twilio webhook for a firm without SMS settings");
        return Err(forbidden_signature());
    };
    let token = open_token(state, firm, &settings)?;
    let signature = req.headers().get("x-twilio-signature").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let path = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or_else(|| req.uri().path());
    let url = format!("{}{path}", settings.public_base_url.trim_end_matches('/'));
    if !signatures::verify(token.expose_secret(), &url, params, json_body, signature) {
        tracing::warn!(firm = %firm.into_uuid(), %url, "Twilio webhook with a signature that does not match");
        return Err(forbidden_signature());
    }
    if let Some(account) = param(params, "AccountSid")
        && account != settings.account_sid
    {
        tracing::warn!(firm = %firm.into_uuid(), "Twilio webhook from another account");
        return Err(forbidden_signature());
    }
    Ok(settings)
}

/// The empty TwiML answer: nothing more for Twilio to do.
fn twiml() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/xml; charset=utf-8")
        .body("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>")
}

fn media_of(params: &[(String, String)]) -> Vec<Media> {
    let count = param(params, "NumMedia").and_then(|n| n.parse::<usize>().ok()).unwrap_or(0).min(20);
    (0..count)
        .filter_map(|i| {
            let url = param(params, &format!("MediaUrl{i}"))?;
            Some(Media {
                url: url.to_owned(),
                content_type: param(params, &format!("MediaContentType{i}")).map(str::to_owned),
            })
        })
        .collect()
}

/// An inbound SMS or MMS from Twilio. The firm is the one the `To` number belongs to, or
/// the one the `MessagingServiceSid` does; the signature is checked with that firm's
/// token. A MessageSid seen before stores nothing new and is answered alike.
#[utoipa::path(
    post, path = "/api/v1/twilio/sms", tag = "sms",
    params(("X-Twilio-Signature" = String, Header, description = "Twilio's signature of the request")),
    request_body(content = String, content_type = "application/x-www-form-urlencoded",
                 description = "Twilio's inbound message parameters (MessageSid, AccountSid, From, To, Body, NumMedia, MediaUrlN, ...)"),
    responses(
        (status = 403, description = "Unknown number, or a signature that does not match", body = ErrorBody),
        (status = 200, description = "Stored (or stored before): empty TwiML", content_type = "text/xml", body = String),
        (status = 400, description = "Not an inbound message", body = ErrorBody),
        (status = 415, description = "Neither a form nor JSON", body = ErrorBody),
        (status = 503, description = "This server cannot open the firm's stored credentials", body = ErrorBody),
    )
)]
pub async fn inbound(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> Result<HttpResponse, ApiError> {
    let (params, is_json) = webhook_params(&req, &body)?;
    let to = param(&params, "To").map(str::to_owned);
    let service = param(&params, "MessagingServiceSid").map(str::to_owned);
    if to.is_none() && service.is_none() {
        return Err(ApiError::invalid_field("To", "an inbound message names the number it was sent to"));
    }
    let (to_lookup, service_lookup) = (to.clone(), service.clone());
    let route = state
        .db()
        .platform_tx(|conn| {
            async move { sms::route(conn, to_lookup.as_deref(), service_lookup.as_deref()).await }.scope_boxed()
        })
        .await?;
    let Some((firm, number_id)) = route else {
        tracing::warn!(to = to.as_deref().unwrap_or_default(), "Twilio webhook for a number no firm has");
        return Err(forbidden_signature());
    };
    verified(&state, &req, firm, &params, is_json.then_some(&body[..])).await?;
    let inbound = Inbound {
        message_sid: param(&params, "MessageSid").or_else(|| param(&params, "SmsSid")).unwrap_or_default().to_owned(),
        from: param(&params, "From").unwrap_or_default().to_owned(),
        to: to.unwrap_or_default(),
        messaging_service_sid: service,
        body: param(&params, "Body").unwrap_or_default().to_owned(),
        segments: param(&params, "NumSegments").and_then(|n| n.parse().ok()),
        media: media_of(&params),
        number_id,
    };
    let received =
        state.db().firm_tx_retried(firm, async |conn| sms::receive(conn, firm, inbound.clone()).await).await?;
    // Committed: now the sockets hear of it.
    if let Received::Stored(stored) = received {
        let bus = state.bus();
        let conversation_id = stored.message.conversation_id;
        live::publish_message(bus, firm, &stored.message).await;
        live::publish_conversation_event(
            bus,
            firm,
            conversation_id,
            "sms.received",
            serde_json::json!({
                "conversation_id": conversation_id,
                "message_id": stored.message.id,
                "contact_id": stored.contact_id,
                "new_conversation": stored.new_conversation,
            }),
        )
        .await;
        if let Some(change) = stored.opt_change {
            let topic = match change {
                sms::OptChange::OptedOut => "sms.opted_out",
                sms::OptChange::OptedIn => "sms.opted_in",
            };
            live::publish_event(bus, firm, topic, serde_json::json!({ "contact_id": stored.contact_id })).await;
        }
        if let Some(reply) = &stored.reply {
            live::publish_message(bus, firm, reply).await;
        }
    }
    Ok(twiml())
}

/// A status callback for a message the hub sent: applied only when it moves the message
/// forward (a late `sent` never replaces `delivered`).
#[utoipa::path(
    post, path = "/api/v1/twilio/status/{firm_id}", tag = "sms",
    params(
        ("firm_id" = Uuid, Path, description = "The firm that sent the message"),
        ("X-Twilio-Signature" = String, Header, description = "Twilio's signature of the request"),
    ),
    request_body(content = String, content_type = "application/x-www-form-urlencoded",
                 description = "Twilio's status parameters (MessageSid, MessageStatus, ErrorCode, ...)"),
    responses(
        (status = 403, description = "A signature that does not match", body = ErrorBody),
        (status = 200, description = "Recorded: empty TwiML", content_type = "text/xml", body = String),
        (status = 400, description = "Not a status callback", body = ErrorBody),
        (status = 415, description = "Neither a form nor JSON", body = ErrorBody),
        (status = 503, description = "This server cannot open the firm's stored credentials", body = ErrorBody),
    )
)]
pub async fn status_callback(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<Uuid>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let firm = FirmId(path.into_inner());
    let (params, is_json) = webhook_params(&req, &body)?;
    verified(&state, &req, firm, &params, is_json.then_some(&body[..])).await?;
    let sid = param(&params, "MessageSid").or_else(|| param(&params, "SmsSid")).unwrap_or_default().to_owned();
    let status = param(&params, "MessageStatus").or_else(|| param(&params, "SmsStatus")).unwrap_or_default().to_owned();
    let error_code = match param(&params, "ErrorCode").filter(|c| !c.is_empty()) {
        Some(code) => Some(code.parse::<i32>().map_err(|_| ApiError::invalid_field("ErrorCode", "must be a number"))?),
        None => None,
    };
    let change = state
        .db()
        .firm_tx_retried(firm, async |conn| sms::apply_status(conn, firm, &sid, &status, error_code).await)
        .await?;
    if let Some(change) = change {
        live::publish_conversation_event(state.bus(), firm, change.conversation_id, "sms.status", &change).await;
    }
    Ok(twiml())
}
