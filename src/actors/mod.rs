//! Live work: the pub/sub bus between nodes, the per-firm supervisors and their children
//! (the conversation hub today), and the WebSocket sessions that hang off them.

pub mod bus;
pub mod hub;
pub mod live;
pub mod registry;
pub mod session;
