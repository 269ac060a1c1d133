//! CSV import and export of contacts and leads (the CLI's `import` and `export`).
//!
//! An import is one transaction: by default a file with any bad row imports nothing, and
//! every bad row is reported with its line number. With `skip_invalid`, each row runs in
//! its own savepoint, bad rows are reported and skipped, and the rest are kept.

use std::io::{Read, Write};

use diesel_async::{AnsiTransactionManager, AsyncPgConnection, TransactionManager};
use scoped_futures::ScopedFutureExt;
use serde::Deserialize;

use crate::db::{Db, DbError};
use crate::domain::contacts::{self, ContactFilter, ContactInput};
use crate::domain::pagination::PageSpec;
use crate::domain::pipeline::{self, CreatedSort, LeadFilter, LeadInput};
use crate::domain::{DomainError, FirmId};

/// Rows of a CSV file, each with the line it started on.
pub type Rows<T> = Vec<(u64, T)>;

#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    #[error("line {line}: {message}")]
    Parse { line: u64, message: String },
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Csv(#[from] csv::Error),
}

/// `first_name,last_name,title,emails,phones,client_id`; several emails or phones are
/// separated by `;`.
#[derive(Debug, Deserialize)]
struct ContactRecord {
    #[serde(default)]
    first_name: String,
    #[serde(default)]
    last_name: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    emails: String,
    #[serde(default)]
    phones: String,
    #[serde(default)]
    client_id: String,
}

/// `first_name,last_name,company,email,phone,source,status,estimated_value_minor,currency`.
#[derive(Debug, Deserialize)]
struct LeadRecord {
    #[serde(default)]
    first_name: String,
    #[serde(default)]
    last_name: String,
    #[serde(default)]
    company: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    source: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    estimated_value_minor: String,
    #[serde(default)]
    currency: String,
}

fn non_empty(s: String) -> Option<String> {
    let s = s.trim().to_owned();
    (!s.is_empty()).then_some(s)
}

fn list(s: &str) -> Vec<String> {
    s.split(';').map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned).collect()
}

/// First characters that make a spreadsheet read a cell as a formula (or, for tab and
/// carriage return, start one in some programs).
const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// A cell as written to an exported file: one a spreadsheet would run as a formula gets a
/// leading `'`, which spreadsheets show as text and `restored` takes off again on import.
/// E.164 phone numbers start with `+`, so they carry the mark too.
/// A value that itself starts with quotes before such a character gets one more, so every
/// value comes back exactly.
pub fn neutralised(cell: &str) -> String {
    if cell.trim_start_matches('\'').starts_with(FORMULA_STARTS) { format!("'{cell}") } else { cell.to_owned() }
}

/// A cell as read from an imported file: the mark `neutralised` adds is taken off, so an
/// exported file imports to the same values.
fn restored(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if rest.trim_start_matches('\'').starts_with(FORMULA_STARTS) => rest,
        _ => cell,
    }
}

/// Writes one row of an exported file, every cell through `neutralised`.
pub fn write_row<W: Write>(writer: &mut csv::Writer<W>, cells: &[&str]) -> csv::Result<()> {
    writer.write_record(cells.iter().map(|cell| neutralised(cell)))
}

fn read_rows<R: Read, T: for<'de> Deserialize<'de>>(reader: R) -> Result<Rows<T>, CsvError> {
    let mut csv = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(reader);
    let headers = csv.headers()?.clone();
    let mut rows = Vec::new();
    for record in csv.records() {
        let record = record.map_err(|err| CsvError::Parse {
            line: err.position().map_or(0, csv::Position::line),
            message: err.to_string(),
        })?;
        // The line the record starts on, counting the header as line 1.
        let line = record.position().map_or(0, csv::Position::line);
        let record: csv::StringRecord = record.iter().map(restored).collect();
        let row = record
            .deserialize::<T>(Some(&headers))
            .map_err(|err| CsvError::Parse { line, message: err.to_string() })?;
        rows.push((line, row));
    }
    Ok(rows)
}

pub fn read_contacts<R: Read>(reader: R) -> Result<Rows<ContactInput>, CsvError> {
    let rows: Rows<ContactRecord> = read_rows(reader)?;
    rows.into_iter()
        .map(|(line, r)| {
            let client_id = match non_empty(r.client_id) {
                Some(id) => Some(Some(
                    uuid::Uuid::parse_str(&id)
                        .map_err(|_| CsvError::Parse { line, message: format!("client_id `{id}` is not an id") })?,
                )),
                None => None,
            };
            Ok((
                line,
                ContactInput {
                    first_name: Some(r.first_name),
                    last_name: Some(r.last_name),
                    title: Some(non_empty(r.title)),
                    client_id,
                    portal_access: None,
                    emails: Some(list(&r.emails)),
                    phones: Some(list(&r.phones)),
                    needs_review: None,
                },
            ))
        })
        .collect()
}

pub fn read_leads<R: Read>(reader: R) -> Result<Rows<LeadInput>, CsvError> {
    let rows: Rows<LeadRecord> = read_rows(reader)?;
    rows.into_iter()
        .map(|(line, r)| {
            let value = match non_empty(r.estimated_value_minor) {
                Some(v) => Some(Some(v.parse::<i64>().map_err(|_| CsvError::Parse {
                    line,
                    message: format!("estimated_value_minor `{v}` is not a whole number"),
                })?)),
                None => None,
            };
            Ok((
                line,
                LeadInput {
                    source: Some(non_empty(r.source)),
                    status: non_empty(r.status),
                    first_name: Some(r.first_name),
                    last_name: Some(r.last_name),
                    company: Some(non_empty(r.company)),
                    email: Some(non_empty(r.email)),
                    phone: Some(non_empty(r.phone)),
                    estimated_value_minor: value,
                    currency: Some(non_empty(r.currency)),
                },
            ))
        })
        .collect()
}

/// What an import did.
#[derive(Debug, Default)]
pub struct ImportReport {
    pub imported: usize,
    /// Line number and what was wrong, for every refused row.
    pub rejected: Vec<(u64, String)>,
    /// True when nothing was kept because a row was bad and skipping was not asked for.
    pub rolled_back: bool,
}

fn describe(err: &DomainError) -> String {
    match err {
        DomainError::Validation { fields, .. } => {
            fields.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>().join("; ")
        }
        other => other.to_string(),
    }
}

/// Why an import transaction was rolled back.
enum Abort {
    /// Bad rows, and skipping them was not asked for.
    Rejected(Vec<(u64, String)>),
    Failed(DomainError),
}

impl From<DbError> for Abort {
    fn from(err: DbError) -> Self {
        Abort::Failed(err.into())
    }
}

impl From<diesel::result::Error> for Abort {
    fn from(err: diesel::result::Error) -> Self {
        Abort::Failed(err.into())
    }
}

/// Imports rows with `create`, all in one transaction (see the module docs).
async fn import<T, F>(
    db: &Db,
    firm: FirmId,
    rows: Rows<T>,
    skip_invalid: bool,
    progress: &(dyn Fn(u64) + Sync),
    create: F,
) -> Result<ImportReport, DomainError>
where
    T: Send + 'static,
    F: for<'c> Fn(&'c mut AsyncPgConnection, T) -> scoped_futures::ScopedBoxFuture<'c, 'c, Result<(), DomainError>>
        + Send
        + Sync,
{
    let outcome = db
        .firm_tx(firm, |conn| {
            async move {
                let mut report = ImportReport::default();
                for (line, row) in rows {
                    // A savepoint per row, so a bad row can be undone alone.
                    AnsiTransactionManager::begin_transaction(conn).await?;
                    match create(conn, row).await {
                        Ok(()) => {
                            AnsiTransactionManager::commit_transaction(conn).await?;
                            report.imported += 1;
                        }
                        Err(err) => {
                            AnsiTransactionManager::rollback_transaction(conn).await?;
                            if matches!(err, DomainError::Db(_) | DomainError::Internal(_)) {
                                return Err(Abort::Failed(err));
                            }
                            report.rejected.push((line, describe(&err)));
                        }
                    }
                    progress(1);
                }
                if !report.rejected.is_empty() && !skip_invalid {
                    return Err(Abort::Rejected(report.rejected));
                }
                Ok(report)
            }
            .scope_boxed()
        })
        .await;
    match outcome {
        Ok(report) => Ok(report),
        Err(Abort::Rejected(rejected)) => Ok(ImportReport { imported: 0, rejected, rolled_back: true }),
        Err(Abort::Failed(err)) => Err(err),
    }
}

pub async fn import_contacts(
    db: &Db,
    firm: FirmId,
    rows: Rows<ContactInput>,
    skip_invalid: bool,
    phone_region: &str,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<ImportReport, DomainError> {
    let region = phone_region.to_owned();
    import(db, firm, rows, skip_invalid, progress, move |conn, row| {
        let region = region.clone();
        async move { contacts::create(conn, firm, row, &region).await.map(|_| ()) }.scope_boxed()
    })
    .await
}

pub async fn import_leads(
    db: &Db,
    firm: FirmId,
    rows: Rows<LeadInput>,
    skip_invalid: bool,
    phone_region: &str,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<ImportReport, DomainError> {
    let region = phone_region.to_owned();
    import(db, firm, rows, skip_invalid, progress, move |conn, row| {
        let region = region.clone();
        async move { pipeline::create_lead(conn, firm, row, &region).await.map(|_| ()) }.scope_boxed()
    })
    .await
}

/// Writes every contact (archived ones too) as CSV, in the import's columns.
pub async fn export_contacts<W: Write>(db: &Db, firm: FirmId, out: W, phone_region: &str) -> Result<usize, CsvError> {
    let mut writer = csv::Writer::from_writer(out);
    writer.write_record(["first_name", "last_name", "title", "emails", "phones", "client_id"])?;
    let filter =
        ContactFilter { include_archived: true, sort: contacts::ContactSort::CreatedAsc, ..ContactFilter::default() };
    let mut spec = PageSpec::first(100);
    let mut written = 0;
    loop {
        let (page_filter, page_spec, region) = (filter.clone(), spec.clone(), phone_region.to_owned());
        let page = db
            .firm_tx(firm, |conn| {
                async move { contacts::list(conn, firm, &page_filter, &page_spec, &region).await }.scope_boxed()
            })
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        for c in &page.items {
            write_row(
                &mut writer,
                &[
                    &c.first_name,
                    &c.last_name,
                    c.title.as_deref().unwrap_or(""),
                    &c.emails.join(";"),
                    &c.phones.join(";"),
                    &c.client_id.map(|id| id.to_string()).unwrap_or_default(),
                ],
            )?;
            written += 1;
        }
        match page.next {
            Some(key) => spec.position = Some((crate::domain::pagination::Direction::Forward, key)),
            None => break,
        }
    }
    writer.flush()?;
    Ok(written)
}

/// Exports list leads in the order they were created.
const OLDEST_FIRST: LeadFilter = LeadFilter { status: None, q: None, sort: CreatedSort::Oldest };

/// Writes every lead as CSV, in the import's columns plus status.
pub async fn export_leads<W: Write>(db: &Db, firm: FirmId, out: W) -> Result<usize, CsvError> {
    let mut writer = csv::Writer::from_writer(out);
    writer.write_record([
        "first_name",
        "last_name",
        "company",
        "email",
        "phone",
        "source",
        "status",
        "estimated_value_minor",
        "currency",
    ])?;
    let mut spec = PageSpec::first(100);
    let mut written = 0;
    loop {
        let page_spec = spec.clone();
        let page = db
            .firm_tx(firm, |conn| {
                async move { pipeline::list_leads(conn, firm, &OLDEST_FIRST, &page_spec).await }.scope_boxed()
            })
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        for l in &page.items {
            write_row(
                &mut writer,
                &[
                    l.first_name.as_str(),
                    l.last_name.as_str(),
                    l.company.as_deref().unwrap_or(""),
                    l.email.as_deref().unwrap_or(""),
                    l.phone.as_deref().unwrap_or(""),
                    l.source.as_deref().unwrap_or(""),
                    l.status.as_str(),
                    &l.estimated_value_minor.map(|v| v.to_string()).unwrap_or_default(),
                    l.currency.as_deref().unwrap_or(""),
                ],
            )?;
            written += 1;
        }
        match page.next {
            Some(key) => spec.position = Some((crate::domain::pagination::Direction::Forward, key)),
            None => break,
        }
    }
    writer.flush()?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_marked_and_every_value_comes_back() {
        assert_eq!(neutralised("=1+2"), "'=1+2");
        assert_eq!(neutralised("+14155550123"), "'+14155550123");
        assert_eq!(neutralised("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(neutralised("-3"), "'-3");
        assert_eq!(neutralised("Plain name"), "Plain name");
        assert_eq!(neutralised("'quoted"), "'quoted");
        for value in ["=1+2", "+1", "-", "@x", "\t=x", "\r", "'=x", "''+x", "'", "''", "'quoted", "plain", "", "a=b"] {
            assert_eq!(restored(&neutralised(value)), value, "{value:?}");
        }
    }

    mod properties {
        use proptest::prelude::*;

        use super::super::{neutralised, read_contacts, read_leads, restored, write_row};

        /// A cell as an import reads it back: trimmed, and non-empty so `non_empty` keeps it.
        fn cell() -> impl Strategy<Value = String> {
            "[^\\s;][^;]{0,30}[^\\s;]|[^\\s;]"
                .prop_map(|c| c.trim().to_owned())
                .prop_filter("trimmed", |c| !c.is_empty())
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            /// Any bytes at all: rows or an error naming a line, never a panic.
            #[test]
            fn arbitrary_files_are_read_or_refused(raw in proptest::collection::vec(any::<u8>(), 0..2048)) {
                let _ = read_contacts(raw.as_slice());
                let _ = read_leads(raw.as_slice());
            }

            /// Header-shaped files with random cells (quotes, commas, formulas, odd ids and
            /// numbers) are read or refused, never a panic.
            #[test]
            fn contact_shaped_files_never_panic(rows in proptest::collection::vec(proptest::collection::vec(".{0,20}", 0..8), 0..20)) {
                let mut file = String::from("first_name,last_name,title,emails,phones,client_id\n");
                for row in rows {
                    file.push_str(&row.join(","));
                    file.push('\n');
                }
                let _ = read_contacts(file.as_bytes());
            }

            /// Whatever an export writes, an import reads back to the same values.
            #[test]
            fn exported_cells_import_unchanged(first in cell(), last in cell(), company in cell()) {
                let mut writer = csv::Writer::from_writer(Vec::new());
                write_row(&mut writer, &["first_name", "last_name", "company"]).map_err(|e| TestCaseError::fail(e.to_string()))?;
                write_row(&mut writer, &[&first, &last, &company]).map_err(|e| TestCaseError::fail(e.to_string()))?;
                let bytes = writer.into_inner().map_err(|e| TestCaseError::fail(e.to_string()))?;
                let rows = read_leads(bytes.as_slice()).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(rows.len(), 1);
                let lead = &rows[0].1;
                prop_assert_eq!(lead.first_name.as_deref(), Some(first.as_str()));
                prop_assert_eq!(lead.last_name.as_deref(), Some(last.as_str()));
                let read_company = lead.company.clone().flatten();
                prop_assert_eq!(read_company.as_deref(), Some(company.as_str()));
            }

            /// Marking and unmarking are inverse for every string.
            #[test]
            fn neutralising_is_undone_by_restoring(cell in ".{0,40}") {
                let marked = neutralised(&cell);
                prop_assert_eq!(restored(&marked), cell.as_str());
                prop_assert!(!marked.trim_start_matches('\'').starts_with(['=', '+', '-', '@', '\t', '\r']) || marked.starts_with('\''));
            }
        }
    }
}
