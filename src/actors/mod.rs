//! Live work: the pub/sub bus that carries updates between nodes. The firm registry,
//! supervisors and WebSocket sessions build on it.

pub mod bus;
