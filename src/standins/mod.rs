//! Local stand-ins for paid services that cannot be reached from here. Each speaks the
//! real service's wire format closely enough for the hub to be run and tested against it
//! unchanged; pointing the hub's base URLs at the real service is all it takes to leave it.

pub mod twilio;
