//! CSV import of contacts and leads over HTTP, with progress.
//!
//! The file is the request body (`text/csv`, the CLI's columns). It is read whole and
//! checked before anything is stored: a file that is not CSV in those columns is a 400 with
//! its line. Then the rows are imported as the CLI does (`ingest::csv`): one transaction, by
//! default all or nothing, with `skip_invalid` each bad row skipped and reported. The answer
//! streams as newline-delimited JSON while that runs: `{"progress":{"done","total"}}` lines,
//! then one last `{"report":{...}}` (or `{"error":{...}}` in the error format). A client that
//! goes away mid-import does not stop it: the transaction finishes (or rolls back) whole.

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

/// Progress lines per import at most (one per this share of the rows).
const PROGRESS_LINES: u64 = 50;

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
    /// Every refused row, by the line it starts on (the header is line 1).
    pub rejected: Vec<RejectedRow>,
    /// True when a row was bad and `skip_invalid` was not given: nothing was kept.
    pub rolled_back: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RejectedRow {
    pub line: u64,
    pub problem: String,
}

/// Imports contacts from a CSV file (columns `first_name,last_name,title,emails,phones,client_id`;
/// several emails or phones separated by `;`).
#[utoipa::path(
    post, path = "/api/v1/contacts/import", tag = "crm", security(("bearer" = [])),
    params(ImportQuery),
    request_body(content = String, content_type = "text/csv", description = "The CSV file, with a header row"),
    responses(
        (status = 200, description = "Newline-delimited JSON: progress lines, then the report (or an error)", body = ImportLine, content_type = "application/x-ndjson"),
        (status = 400, description = "Not CSV in the import's columns (the line is named), or empty", body = ErrorBody),
        (status = 413, description = "Over 10 MiB", body = ErrorBody),
        (status = 415, description = "Not sent as text/csv", body = ErrorBody),
    )
)]
pub async fn import_contacts(
    ctx: FirmCtx,
    req: HttpRequest,
    query: web::Query<ImportQuery>,
    body: Bytes,
) -> Result<HttpResponse, ApiError> {
    let rows = read_file(&req, &body, |file: &[u8]| csv_io::read_contacts(file))?;
    let region = ctx.phone_region().to_owned();
    start(ctx, "contacts.imported", rows, move |db, firm, rows, progress| {
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
    responses(
        (status = 200, description = "Newline-delimited JSON: progress lines, then the report (or an error)", body = ImportLine, content_type = "application/x-ndjson"),
        (status = 400, description = "Not CSV in the import's columns (the line is named), or empty", body = ErrorBody),
        (status = 413, description = "Over 10 MiB", body = ErrorBody),
        (status = 415, description = "Not sent as text/csv", body = ErrorBody),
    )
)]
pub async fn import_leads(
    ctx: FirmCtx,
    req: HttpRequest,
    query: web::Query<ImportQuery>,
    body: Bytes,
) -> Result<HttpResponse, ApiError> {
    let rows = read_file(&req, &body, |file: &[u8]| csv_io::read_leads(file))?;
    let region = ctx.phone_region().to_owned();
    start(ctx, "leads.imported", rows, move |db, firm, rows, progress| {
        Box::pin(
            async move { csv_io::import_leads(&db, firm, rows, query.skip_invalid, &region, progress.as_ref()).await },
        )
    })
    .await
}

/// The body as rows, or the client's mistake: not `text/csv`, empty, or not CSV in the
/// import's columns.
fn read_file<T>(
    req: &HttpRequest,
    body: &Bytes,
    read: fn(&[u8]) -> Result<Rows<T>, CsvError>,
) -> Result<Rows<T>, ApiError> {
    let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let essence = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    if essence != "text/csv" {
        return Err(ApiError::UnsupportedMediaType("send the file as text/csv".into()));
    }
    let rows = read(body).map_err(|err| match err {
        CsvError::Parse { line, message } => {
            ApiError::validation(format!("line {line}: {message}"), serde_json::json!({ "line": line }))
        }
        other => ApiError::validation(format!("the file is not CSV: {other}"), serde_json::json!({})),
    })?;
    if rows.is_empty() {
        return Err(ApiError::invalid_field("body", "the file has no rows under its header"));
    }
    Ok(rows)
}

type Progress = Box<dyn Fn(u64) + Sync + Send>;
type Importing = std::pin::Pin<Box<dyn std::future::Future<Output = Result<ImportReport, crate::domain::DomainError>>>>;

/// Checks the permission, then runs `import` on its own task, streaming its progress and
/// its report; the audit event records what was kept.
async fn start<T: 'static>(
    ctx: FirmCtx,
    action: &'static str,
    rows: Rows<T>,
    import: impl FnOnce(crate::db::Db, crate::domain::FirmId, Rows<T>, Progress) -> Importing + 'static,
) -> Result<HttpResponse, ApiError> {
    ctx.require(Permission::ContentWrite).await?;
    let db = ctx.state().await?.db().clone();
    let firm = ctx.firm();
    let event = ctx.event(action, Outcome::Success);
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
        let outcome = import(db.clone(), firm, rows, progress).await;
        let last = match outcome {
            Ok(report) => {
                let kept = report.imported as u64;
                let metadata = serde_json::json!({
                    "total": total, "imported": kept, "rejected": report.rejected.len(), "rolled_back": report.rolled_back,
                });
                let event = event.with_metadata(metadata);
                let recorded = db.firm_tx_retried(firm, async |conn| audit::record(conn, &event).await).await;
                if let Err(err) = recorded {
                    tracing::error!(error = %err, "recording an import's audit event failed");
                }
                ImportLine::report(report, total)
            }
            Err(err) => ImportLine::failed(&ApiError::from(err)),
        };
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
        let rejected = report.rejected.into_iter().map(|(line, problem)| RejectedRow { line, problem }).collect();
        ImportLine {
            progress: None,
            report: Some(ImportOutcome {
                total,
                imported: report.imported as u64,
                rejected,
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
