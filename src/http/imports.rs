//! CSV import of contacts and leads over HTTP, with progress.
//!
//! The file is the request body (`text/csv`, the CLI's columns). It is read whole and
//! checked before anything is stored: a file that is not CSV in those columns is a 400 with
//! its line. Then the rows are imported as the CLI does (`ingest::csv`): one transaction, by
//! default all or nothing, with `skip_invalid` each bad row skipped and reported. The answer
//! streams as newline-delimited JSON while that runs: `{"progress":{"done","total"}}` lines,
//! then one last `{"report":{...}}` (or `{"error":{...}}` in the error format). A client that
//! goes away mid-import does not stop it: the transaction finishes (or rolls back) whole.
//!
//! An import holds one pooled connection for its whole transaction, so they are rationed:
//! the permission is checked before the body is read, a file is at most 10 MiB and
//! 50,000 rows, a firm runs one import at a time and a node at most two (a busy firm gets
//! 409, a busy node 503 to retry).

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::ctx::FirmCtx;
use super::error::{ApiError, ErrorBody, ErrorDetail};
use crate::domain::audit::{self, Outcome};
use crate::domain::permissions::Permission;
use crate::ingest::csv::{self as csv_io, CsvError, ImportReport, Rows};

/// The largest file an import takes (the API's usual body limit is far smaller).
pub const MAX_IMPORT_BYTES: usize = 10 * 1024 * 1024;

/// The most rows one file may hold.
pub const MAX_IMPORT_ROWS: usize = 50_000;

/// Imports one node runs at once (each holds a pooled connection throughout).
const IMPORTS_PER_NODE: usize = 2;

/// Refused rows the report lists (`rejected_total` counts them all).
const REJECTED_LISTED: usize = 1_000;

/// Progress lines per import at most (one per this share of the rows).
const PROGRESS_LINES: u64 = 50;

/// The firms importing on this node now.
pub type Importing = std::sync::Arc<std::sync::Mutex<Vec<crate::domain::FirmId>>>;

/// A firm's turn to import on this node, given back when dropped (when the import ends).
struct ImportSlot {
    importing: Importing,
    firm: crate::domain::FirmId,
}

impl ImportSlot {
    fn take(importing: &Importing, firm: crate::domain::FirmId) -> Result<Self, ApiError> {
        let mut running = importing.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if running.contains(&firm) {
            return Err(ApiError::Conflict("an import is already running for this firm; wait for its report".into()));
        }
        if running.len() >= IMPORTS_PER_NODE {
            return Err(ApiError::unavailable("imports are busy on this server; retry shortly"));
        }
        running.push(firm);
        Ok(ImportSlot { importing: importing.clone(), firm })
    }
}

impl Drop for ImportSlot {
    fn drop(&mut self) {
        let mut running = self.importing.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        running.retain(|f| *f != self.firm);
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ImportQuery {
    /// Import the good rows and report the bad ones, instead of importing nothing when any
    /// row is bad (the default).
    #[serde(default)]
    pub skip_invalid: bool,
}

/// One line of the streamed answer: exactly one of the three is present.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportLine {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<ImportProgress>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<ImportOutcome>,
    /// The import failed (nothing was kept): the error format's `error` object.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorDetail>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ImportProgress {
    /// Rows processed so far.
    pub done: u64,
    pub total: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ImportOutcome {
    pub total: u64,
    pub imported: u64,
    /// Refused rows, by the line each starts on (the header is line 1): the first 1,000.
    pub rejected: Vec<RejectedRow>,
    /// How many rows were refused in all.
    pub rejected_total: u64,
    /// True when a row was bad and `skip_invalid` was not given: nothing was kept.
    pub rolled_back: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RejectedRow {
    pub line: u64,
    pub problem: String,
}

/// What both import endpoints answer.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // never built: it describes the answers for the document
enum ImportAnswers {
    #[response(
        status = 200,
        description = "Newline-delimited JSON: progress lines, then the report (or an error)",
        content_type = "application/x-ndjson"
    )]
    Streamed(ImportLine),
    #[response(
        status = 400,
        description = "Not CSV in the import's columns (the line is named), empty, or over 50,000 rows"
    )]
    NotCsv(ErrorBody),
    #[response(status = 409, description = "An import is already running for this firm")]
    Running(ErrorBody),
    #[response(status = 413, description = "Over 10 MiB")]
    TooLarge(ErrorBody),
    #[response(status = 415, description = "Not sent as text/csv")]
    NotText(ErrorBody),
    #[response(status = 503, description = "Imports are busy on this server: retry shortly")]
    Busy(ErrorBody),
}

/// Imports contacts from a CSV file (columns `first_name,last_name,title,emails,phones,client_id`;
/// several emails or phones separated by `;`).
#[utoipa::path(
    post, path = "/api/v1/contacts/import", tag = "crm", security(("bearer" = [])),
    params(ImportQuery),
    request_body(content = String, content_type = "text/csv", description = "The CSV file, with a header row"),
    responses(ImportAnswers)
)]
pub async fn import_contacts(
    ctx: FirmCtx,
    req: HttpRequest,
    query: web::Query<ImportQuery>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (slot, rows) = admit(&ctx, &req, payload, |file: &[u8]| csv_io::read_contacts(file)).await?;
    let region = ctx.phone_region().to_owned();
    start(ctx, slot, "contacts.imported", rows, move |db, firm, rows, progress| {
        Box::pin(async move {
            csv_io::import_contacts(&db, firm, rows, query.skip_invalid, &region, progress.as_ref()).await
        })
    })
    .await
}

/// Imports leads from a CSV file (columns
/// `first_name,last_name,company,email,phone,source,status,estimated_value_minor,currency`).
#[utoipa::path(
    post, path = "/api/v1/leads/import", tag = "pipeline", security(("bearer" = [])),
    params(ImportQuery),
    request_body(content = String, content_type = "text/csv", description = "The CSV file, with a header row"),
    responses(ImportAnswers)
)]
pub async fn import_leads(
    ctx: FirmCtx,
    req: HttpRequest,
    query: web::Query<ImportQuery>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (slot, rows) = admit(&ctx, &req, payload, |file: &[u8]| csv_io::read_leads(file)).await?;
    let region = ctx.phone_region().to_owned();
    start(ctx, slot, "leads.imported", rows, move |db, firm, rows, progress| {
        Box::pin(
            async move { csv_io::import_leads(&db, firm, rows, query.skip_invalid, &region, progress.as_ref()).await },
        )
    })
    .await
}

/// Who may import, whether this firm and node may start one now, and the body as rows, in
/// that order: nothing of the file is read for a caller who may not import, and the file is
/// refused whole when it is not `text/csv`, over the limits, or not CSV in the import's
/// columns (the line is named).
async fn admit<T: Send + 'static>(
    ctx: &FirmCtx,
    req: &HttpRequest,
    mut payload: web::Payload,
    read: fn(&[u8]) -> Result<Rows<T>, CsvError>,
) -> Result<(ImportSlot, Rows<T>), ApiError> {
    use futures_util::StreamExt;
    ctx.require(Permission::ContentWrite).await?;
    super::body::require_media_type(req, "text/csv", "send the file as text/csv")?;
    let slot = ImportSlot::take(&ctx.state().await?.importing, ctx.firm())?;
    let mut body = bytes::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::validation(format!("the upload failed: {e}"), serde_json::json!({})))?;
        if body.len() + chunk.len() > MAX_IMPORT_BYTES {
            return Err(ApiError::PayloadTooLarge("an import file is at most 10 MiB".into()));
        }
        body.extend_from_slice(&chunk);
    }
    let body = body.freeze();
    // PostgreSQL stores no NUL: refused here, naming its line, rather than failing the import.
    if let Some(at) = body.iter().position(|b| *b == 0) {
        let line = body[..at].iter().filter(|b| **b == b'\n').count() + 1;
        return Err(ApiError::validation(
            format!("line {line}: text may not contain the NUL character"),
            serde_json::json!({ "line": line }),
        ));
    }
    // Reading a large file is CPU work: off the worker's event loop.
    let rows = web::block(move || read(&body))
        .await
        .map_err(|e| ApiError::internal(anyhow::anyhow!("the CSV reader stopped: {e}")))?
        .map_err(|err| match err {
            CsvError::Parse { line, message } => {
                ApiError::validation(format!("line {line}: {message}"), serde_json::json!({ "line": line }))
            }
            other => ApiError::validation(format!("the file is not CSV: {other}"), serde_json::json!({})),
        })?;
    if rows.is_empty() {
        return Err(ApiError::invalid_field("body", "the file has no rows under its header"));
    }
    if rows.len() > MAX_IMPORT_ROWS {
        return Err(ApiError::invalid_field("body", &format!("a file holds at most {MAX_IMPORT_ROWS} rows; split it")));
    }
    Ok((slot, rows))
}

type Progress = Box<dyn Fn(u64) + Sync + Send>;
type ImportRun = std::pin::Pin<Box<dyn std::future::Future<Output = Result<ImportReport, crate::domain::DomainError>>>>;

/// Checks the permission, then runs `import` on its own task, streaming its progress and
/// its report; the audit event records what was kept.
async fn start<T: 'static>(
    ctx: FirmCtx,
    slot: ImportSlot,
    action: &'static str,
    rows: Rows<T>,
    import: impl FnOnce(crate::db::Db, crate::domain::FirmId, Rows<T>, Progress) -> ImportRun + 'static,
) -> Result<HttpResponse, ApiError> {
    let db = ctx.state().await?.db().clone();
    let firm = ctx.firm();
    let event = ctx.event(action, Outcome::Success);
    let failure = ctx.event(action, Outcome::Failure);
    let total = rows.len() as u64;
    let (lines, received) = tokio::sync::mpsc::unbounded_channel::<Bytes>();
    let step = total.div_ceil(PROGRESS_LINES).max(1);
    let done = std::sync::atomic::AtomicU64::new(0);
    let progress_lines = lines.clone();
    let progress: Progress = Box::new(move |n| {
        let now = done.fetch_add(n, std::sync::atomic::Ordering::Relaxed) + n;
        if now % step == 0 || now == total {
            let _ = progress_lines.send(line(ImportLine::progress(now, total)));
        }
    });
    actix_web::rt::spawn(async move {
        // The firm's turn ends with the import, whether or not anyone still listens.
        let _slot = slot;
        let (last, event) = match import(db.clone(), firm, rows, progress).await {
            Ok(report) => {
                let metadata = serde_json::json!({
                    "total": total, "imported": report.imported, "rejected": report.rejected.len(),
                    "rolled_back": report.rolled_back,
                });
                (ImportLine::report(report, total), event.with_metadata(metadata))
            }
            Err(err) => {
                let metadata = serde_json::json!({ "total": total, "imported": 0 });
                (ImportLine::failed(&ApiError::from(err)), failure.with_metadata(metadata))
            }
        };
        // The rows were kept (or not) by the import's own transaction; its record follows.
        if let Err(err) = db.firm_tx_retried(firm, async |conn| audit::record(conn, &event).await).await {
            tracing::error!(error = %err, "recording an import's audit event failed");
        }
        let _ = lines.send(line(last));
    });
    let stream = futures_util::stream::unfold(received, |mut received| async move {
        received.recv().await.map(|chunk| (Ok::<_, actix_web::Error>(chunk), received))
    });
    Ok(HttpResponse::Ok()
        .content_type("application/x-ndjson")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .streaming(stream))
}

fn line(value: ImportLine) -> Bytes {
    let mut text = serde_json::to_vec(&value).unwrap_or_default();
    text.push(b'\n');
    Bytes::from(text)
}

impl ImportLine {
    fn progress(done: u64, total: u64) -> Self {
        ImportLine { progress: Some(ImportProgress { done, total }), report: None, error: None }
    }

    fn report(report: ImportReport, total: u64) -> Self {
        let rejected_total = report.rejected.len() as u64;
        let rejected = report
            .rejected
            .into_iter()
            .take(REJECTED_LISTED)
            .map(|(line, problem)| RejectedRow { line, problem })
            .collect();
        ImportLine {
            progress: None,
            report: Some(ImportOutcome {
                total,
                imported: report.imported as u64,
                rejected,
                rejected_total,
                rolled_back: report.rolled_back,
            }),
            error: None,
        }
    }

    fn failed(err: &ApiError) -> Self {
        if let ApiError::Internal(cause) = err {
            tracing::error!(error = ?cause, "an import failed");
        }
        let detail = ErrorDetail { code: err.code(), message: err.to_string(), details: err.details() };
        ImportLine { progress: None, report: None, error: Some(detail) }
    }
}
