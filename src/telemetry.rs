//! Tracing subscriber: JSON lines for machines, pretty text for a terminal.

use std::io::IsTerminal;

use tracing::Subscriber;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;

use crate::config::{LogFormat, TelemetrySettings};

/// Builds the subscriber; `RUST_LOG`, when set, overrides the configured filter.
pub fn get_subscriber<W>(settings: &TelemetrySettings, writer: W) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // async-imap traces every line it writes, LOGIN with its password included: never
    // below info, whatever the filter asks for.
    let filter = match "async_imap=info".parse() {
        Ok(ceiling) => filter.add_directive(ceiling),
        Err(_) => filter,
    };
    let json = match settings.format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stdout().is_terminal(),
    };
    let registry = tracing_subscriber::registry().with(filter);
    if json {
        Box::new(
            registry.with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(writer),
            ),
        )
    } else {
        Box::new(registry.with(tracing_subscriber::fmt::layer().with_writer(writer)))
    }
}

/// Installs the subscriber once per process; later calls (tests) are ignored.
pub fn init_subscriber(subscriber: Box<dyn Subscriber + Send + Sync>) {
    let _ = tracing::subscriber::set_global_default(subscriber);
}
