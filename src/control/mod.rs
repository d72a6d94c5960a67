//! The control socket: request validation and framing (`protocol`), the
//! server thread (`server`) and its connection budget (`idle`), the
//! CLI-side client (`client`), the pre-bind probe and "already running"
//! diagnostics (`probe`), socket permissions (`perms`), order-keeping JSON
//! pretty printing (`pretty`), descriptor passing (`fdpass`) and what a failed connection means for the
//! operator (`advice`).

pub mod advice;
pub mod bind;
pub mod client;
pub mod fanout;
pub mod fdpass;
pub mod follow;
pub mod idle;
pub mod perms;
pub mod pretty;
pub mod probe;
pub mod protocol;
pub mod server;
