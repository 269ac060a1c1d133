//! Email coming in: IMAP sessions ([`imap`]), one raw message read ([`parse`], [`html`]),
//! and what it is before it may touch a conversation ([`triage`], [`bounce`]).

pub mod bounce;
pub mod html;
pub mod imap;
pub mod parse;
pub mod triage;
