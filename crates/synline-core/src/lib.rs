//! `synline-core`: Linux's TCP passive open as a deterministic, sans-I/O state machine.
//!
//! The caller owns every resource: it passes each received frame in its own buffer with
//! `now`, gets a [`Verdict`] back (send the reply now in the buffer, pass the frame to the
//! kernel, drop it for a typed [`DropReason`], or nothing to send), drives the SYN-ACK timers
//! with [`Worker::poll_timers`], and passes in the secrets. Nothing here reads a clock, draws
//! a random number or performs I/O, so every test is deterministic.
//!
//! The public surface is what the crate root re-exports (the socket API, the worker, the
//! child, the settings, the counters), plus [`syncookie`] and [`secure_seq`], whose keyed
//! functions a validator outside the engine (a test, a BPF twin) must compute bit for bit.
//! Everything else is private to the engine.
//!
//! The map, for a reader who knows the kernel (the spec's rule ids in the last column):
//!
//! | file | kernel | rules |
//! |---|---|---|
//! | `socket.rs` | `__sock_create`, `inet_create`, `inet_bind`, `inet_listen`, `inet_csk_accept` | A |
//! | `stack.rs` | the network namespace | |
//! | `listener.rs` | listening `inet_connection_sock` + `request_sock_queue` | D-3, L-1 |
//! | `settings.rs` | the sysctls and socket options of section 1, with their limits | |
//! | `worker.rs` | `tcp_v4_rcv`, `tcp_v4_do_rcv`, LISTEN in `tcp_rcv_state_process` | D, L, P-1 |
//! | `conn_request.rs` | `tcp_conn_request`, `tcp_openreq_init`, `tcp_make_synack` (the one SYN-ACK builder) | S, Q, X, V |
//! | `check_req.rs` | `tcp_check_req`, `tcp_v4_syn_recv_sock` | R, C, P-2 |
//! | `handoff.rs` | (none: RSS keeps a flow on one CPU; here a misrouted segment visits the other workers) | D-2 |
//! | `request_table.rs` | ehash for request socks, `reqsk_queue_hash_add`, the timer wheel | Q-6 |
//! | `timer.rs` | `reqsk_timer_handler`, `syn_ack_recalc`, `reqsk_timeout`, [`Worker::poll_timeout`] | T |
//! | [`syncookie`] | `syncookies.c`, with the cookie secrets and their rotation | K |
//! | `accepted.rs` | (none: the kernel's established lookup comes first, D-2) the grace for a just-accepted flow's late segments | D-2 |
//! | `accept_queue.rs` | `inet_csk_reqsk_queue_add`, the accept queue | C-7, A-1 |
//! | [`secure_seq`] | `secure_seq.c` | Q-3, Q-4 |
//! | `drop_reason.rs`, `stats.rs` | `dropreason-core.h`, SNMP MIBs | section 14 |
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod accept_queue;
mod accepted;
mod check_req;
mod conn_request;
mod drop_reason;
mod flow;
mod handoff;
mod listener;
mod request_table;
pub mod secure_seq;
mod settings;
mod siphash;
mod socket;
mod stack;
mod stats;
pub mod syncookie;
mod timer;
mod worker;

pub use accept_queue::{Child, ChildState, ChildTimestamps};
pub use drop_reason::DropReason;
pub use flow::FlowKey;
pub use handoff::HANDOFF_FRAME;
pub use listener::Listener;
pub use secure_seq::Secrets;
pub use settings::{InvalidSetting, ListenerConfig, SyncookieMode};
pub use socket::{AddressFamily, Errno, Socket};
pub use stack::{Stack, StackConfig};
pub use stats::{Mib, Snapshot};
pub use worker::{Verdict, Worker};
