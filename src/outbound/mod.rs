//! What goes out: the job runner that performs queued side effects, outbound webhooks
//! email over SMTP, and SMS through Twilio. Nothing here is fire-and-forget from memory: every
//! effect starts as a job row committed with the change that caused it.

pub mod email;
pub mod guard;
pub mod job;
pub mod mail;
pub mod runner;
pub mod sla;
pub mod stripe;
pub mod twilio;
pub mod webhooks;

/// The handler for a job kind: the one place that maps kinds to code.
pub fn job_handler(kind: &str) -> Option<job::JobHandler> {
    match kind {
        crate::domain::webhooks::DELIVER_JOB => Some(|ctx, job| Box::pin(webhooks::deliver(ctx, job))),
        crate::domain::invitations::SEND_JOB => Some(|ctx, job| Box::pin(mail::send_invitation(ctx, job))),
        crate::domain::password_resets::SEND_JOB => Some(|ctx, job| Box::pin(mail::send_password_reset(ctx, job))),
        crate::domain::email::SEND_JOB => Some(|ctx, job| Box::pin(email::send(ctx, job))),
        crate::domain::sms::SEND_JOB => Some(|ctx, job| Box::pin(twilio::send(ctx, job))),
        crate::domain::sla_timers::RECOMPUTE_JOB => Some(|ctx, job| Box::pin(sla::recompute(ctx, job))),
        crate::domain::bookings::NOTIFY_JOB => Some(|ctx, job| Box::pin(mail::send_booking_notice(ctx, job))),
        _ => None,
    }
}
