//! `synline-core`: Linux's TCP passive open as a deterministic, sans-I/O state machine.
//!
//! The caller owns every resource: it passes each received frame in its own buffer with
//! `now`, gets a [`Verdict`] back (send the reply now in the buffer, pass the frame to the
//! kernel, drop it for a typed [`DropReason`], or nothing to send), drives the SYN-ACK timers
//! with [`Worker::poll_timers`], and passes in the secrets. Nothing here reads a clock, draws
//! a random number or performs I/O, so every test is deterministic.
//!
//! The map, for a reader who knows the kernel (the spec's rule ids in brackets):
//!
//! | here | kernel | rules |
//! |---|---|---|
//! | [`socket`] | `__sock_create`, `inet_create`, `inet_bind`, `inet_listen`, `inet_csk_accept` | A |
//! | [`stack`] | the network namespace | |
//! | [`listener`] | listening `inet_connection_sock` + `request_sock_queue` | D-3, L-1 |
//! | [`worker`] | `tcp_v4_rcv`, `tcp_v4_do_rcv`, LISTEN in `tcp_rcv_state_process` | D, L, P-1 |
//! | [`conn_request`] | `tcp_conn_request`, `tcp_openreq_init`, `tcp_make_synack` | S, Q, X, V |
//! | [`check_req`] | `tcp_check_req`, `tcp_v4_syn_recv_sock` | R, C, P-2 |
//! | [`request_table`] | ehash for request socks, `reqsk_queue_hash_add` | Q-6 |
//! | [`timer`] | `reqsk_timer_handler`, `syn_ack_recalc` | T |
//! | [`syncookie`] | `syncookies.c` | K |
//! | [`accept_queue`] | `inet_csk_reqsk_queue_add`, the accept queue | C-7, A-1 |
//! | [`secure_seq`] | `secure_seq.c` | Q-3, Q-4 |
//! | [`drop_reason`], [`stats`] | `dropreason-core.h`, SNMP MIBs | section 14 |
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod accept_queue;
pub mod check_req;
pub mod conn_request;
pub mod drop_reason;
pub mod flow;
pub mod listener;
pub mod request_table;
pub mod secure_seq;
pub mod settings;
pub mod siphash;
pub mod socket;
pub mod stack;
pub mod stats;
pub mod syncookie;
pub mod timer;
pub mod worker;

pub use accept_queue::{Child, ChildState, ChildTimestamps};
pub use drop_reason::DropReason;
pub use flow::FlowKey;
pub use listener::Listener;
pub use secure_seq::Secrets;
pub use settings::{InvalidSetting, ListenerConfig, SyncookieMode};
pub use socket::{AddressFamily, Errno, Socket};
pub use stack::{Stack, StackConfig};
pub use stats::{Mib, Snapshot};
pub use worker::{Verdict, Worker};
