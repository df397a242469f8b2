//! The embedding API, along the path the kernel takes for socket(2), bind(2), listen(2),
//! accept(2) and close(2).
//!
//! ```text
//! kernel                                   synline
//! __sock_create(family)                    Stack::socket(family)
//!   net_families[family]->create()           NET_FAMILIES[..].create  (inet_create / inet6_create)
//! inet_bind -> inet_csk_get_port           Socket::bind      (EAFNOSUPPORT, EINVAL, EADDRINUSE)
//! inet_listen -> inet_csk_listen_start     Socket::listen    (B = min(backlog, somaxconn))
//! inet_csk_accept                          Socket::accept    (EINVAL, EAGAIN: never blocks)
//! inet_csk_listen_stop                     Socket::close     (A-2, A-3)
//! ```
//!
//! Deliberate differences from Linux, each because the engine owns no ephemeral port space:
//! bind() to port 0 and listen() on an unbound socket are EINVAL instead of picking a port.
//! An IPv6 wildcard listener does not take IPv4 traffic (as with IPV6_V6ONLY set).

use crate::accept_queue::Child;
use crate::listener::Listener;
use crate::settings::ListenerConfig;
use crate::stack::Stack;
use core::net::SocketAddr;
use std::sync::Arc;

/// Errors, named as the kernel names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Errno {
    /// Address already in use.
    EADDRINUSE,
    /// Invalid argument (wrong state for the call).
    EINVAL,
    /// Nothing to accept now.
    EAGAIN,
    /// Address family does not match the socket.
    EAFNOSUPPORT,
    /// The socket is closed.
    EBADF,
}

impl core::fmt::Display for Errno {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let s = match self {
            Errno::EADDRINUSE => "EADDRINUSE: address already in use",
            Errno::EINVAL => "EINVAL: invalid argument",
            Errno::EAGAIN => "EAGAIN: resource temporarily unavailable",
            Errno::EAFNOSUPPORT => "EAFNOSUPPORT: address family not supported",
            Errno::EBADF => "EBADF: bad file descriptor",
        };
        f.write_str(s)
    }
}

impl std::error::Error for Errno {}

/// Address families (the values are Linux's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum AddressFamily {
    /// AF_INET.
    Inet = 2,
    /// AF_INET6.
    Inet6 = 10,
}

/// `struct net_proto_family`: a family and its `create`.
#[derive(Debug)]
pub struct NetProtoFamily {
    /// The family.
    pub family: AddressFamily,
    /// Makes an unbound socket of the family.
    pub create: fn(&Stack) -> Result<Socket, Errno>,
}

fn inet_create(stack: &Stack) -> Result<Socket, Errno> {
    Ok(Socket {
        stack: stack.clone(),
        family: AddressFamily::Inet,
        state: State::Unbound(ListenerConfig::default()),
    })
}

fn inet6_create(stack: &Stack) -> Result<Socket, Errno> {
    Ok(Socket {
        stack: stack.clone(),
        family: AddressFamily::Inet6,
        state: State::Unbound(ListenerConfig::default()),
    })
}

/// `net_families[]`, as `sock_register` leaves it after inet_init and inet6_init.
pub static NET_FAMILIES: [NetProtoFamily; 2] = [
    NetProtoFamily {
        family: AddressFamily::Inet,
        create: inet_create,
    },
    NetProtoFamily {
        family: AddressFamily::Inet6,
        create: inet6_create,
    },
];

#[derive(Debug)]
enum State {
    Unbound(ListenerConfig),
    Bound {
        addr: SocketAddr,
        config: ListenerConfig,
    },
    Listening(Arc<Listener>),
    Closed,
}

/// A socket of the engine: unbound, bound, listening or closed.
#[derive(Debug)]
pub struct Socket {
    stack: Stack,
    family: AddressFamily,
    state: State,
}

impl Stack {
    /// `__sock_create`: finds the family in `NET_FAMILIES` and calls its `create`.
    pub fn socket(&self, family: AddressFamily) -> Result<Socket, Errno> {
        let f = NET_FAMILIES
            .iter()
            .find(|f| f.family == family)
            .ok_or(Errno::EAFNOSUPPORT)?;
        (f.create)(self)
    }
}

fn conflicts(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port()
        && a.is_ipv6() == b.is_ipv6()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

impl Socket {
    /// The family.
    pub fn family(&self) -> AddressFamily {
        self.family
    }

    /// The bound address.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match &self.state {
            State::Bound { addr, .. } => Some(*addr),
            State::Listening(l) => Some(l.addr),
            _ => None,
        }
    }

    /// The listener, once listening: its counters and accept list.
    pub fn listener(&self) -> Option<&Arc<Listener>> {
        match &self.state {
            State::Listening(l) => Some(l),
            _ => None,
        }
    }

    /// The settings; before listen() they are stored with the socket, after it they are the
    /// listener's live settings.
    pub fn config(&self) -> Result<ListenerConfig, Errno> {
        match &self.state {
            State::Unbound(config) => Ok(*config),
            State::Bound { config, .. } => Ok(*config),
            State::Listening(l) => Ok(l.config()),
            State::Closed => Err(Errno::EBADF),
        }
    }

    /// Changes the settings (setsockopt/sysctl); on a listener, from the next segment on.
    pub fn set_config(&mut self, c: ListenerConfig) -> Result<(), Errno> {
        if c.validate().is_err() {
            return Err(Errno::EINVAL);
        }
        match &mut self.state {
            State::Unbound(config) | State::Bound { config, .. } => {
                *config = c;
                Ok(())
            }
            State::Listening(l) => {
                l.set_config(&c);
                Ok(())
            }
            State::Closed => Err(Errno::EBADF),
        }
    }

    /// `inet_bind`: EAFNOSUPPORT for the wrong family, EINVAL if already bound or port 0,
    /// EADDRINUSE if a socket holds the port on the same or a wildcard address.
    pub fn bind(&mut self, addr: SocketAddr) -> Result<(), Errno> {
        if matches!(self.state, State::Closed) {
            return Err(Errno::EBADF);
        }
        if addr.is_ipv6() != (self.family == AddressFamily::Inet6) {
            return Err(Errno::EAFNOSUPPORT);
        }
        let State::Unbound(config) = self.state else {
            return Err(Errno::EINVAL);
        };
        if addr.port() == 0 {
            return Err(Errno::EINVAL);
        }
        let mut ok = true;
        self.stack.shared.update_tables(|t| {
            if t.bound.iter().any(|b| conflicts(*b, addr)) {
                ok = false;
            } else {
                t.bound.push(addr);
            }
        });
        if !ok {
            return Err(Errno::EADDRINUSE);
        }
        self.state = State::Bound { addr, config };
        Ok(())
    }

    /// `inet_listen`: B = min(backlog as unsigned, somaxconn). Listening again only updates B.
    pub fn listen(&mut self, backlog: i32) -> Result<(), Errno> {
        let somaxconn = self.stack.shared.config.somaxconn;
        let b = (backlog as u32).min(somaxconn);
        match &self.state {
            State::Listening(l) => {
                l.set_backlog(b);
                Ok(())
            }
            State::Bound { addr, config } => {
                let l = Arc::new(Listener::new(*addr, config, b));
                let entry = l.clone();
                self.stack.shared.update_tables(|t| {
                    t.listeners
                        .insert((entry.addr.ip(), entry.addr.port()), entry);
                });
                self.state = State::Listening(l);
                Ok(())
            }
            State::Unbound(_) => Err(Errno::EINVAL),
            State::Closed => Err(Errno::EBADF),
        }
    }

    /// For an embedder whose children leave the accept list at once for a queue of its own
    /// (the daemon hands them to the application's kernel listener): that queue's length and
    /// bound as last measured, which S-4 and C-7 then also test (`None` forgets it). EINVAL
    /// unless listening.
    pub fn set_embedder_accept_queue(&self, q: Option<(u32, u32)>) -> Result<(), Errno> {
        match &self.state {
            State::Listening(l) => {
                l.set_embedder_queue(q);
                Ok(())
            }
            State::Closed => Err(Errno::EBADF),
            _ => Err(Errno::EINVAL),
        }
    }

    /// `inet_csk_accept`, non-blocking: the head of the accept list (A-1).
    pub fn accept(&self) -> Result<Child, Errno> {
        match &self.state {
            State::Listening(l) => l.accept_queue.pop().ok_or(Errno::EAGAIN),
            State::Closed => Err(Errno::EBADF),
            _ => Err(Errno::EINVAL),
        }
    }

    /// `inet_csk_listen_stop` (A-2, A-3): the listener leaves the table at once; the children
    /// nobody accepted are returned so the caller resets them (an RST per child:
    /// [`crate::Worker::write_child_rst`]); request socks are not swept, each is dropped when
    /// its timer fires or a segment reaches it.
    pub fn close(&mut self) -> Vec<Child> {
        let state = core::mem::replace(&mut self.state, State::Closed);
        let mut orphans = Vec::new();
        match state {
            State::Listening(l) => {
                l.stop();
                let key = (l.addr.ip(), l.addr.port());
                self.stack.shared.update_tables(|t| {
                    t.listeners.remove(&key);
                    t.bound.retain(|b| *b != l.addr);
                });
                while let Some(c) = l.accept_queue.pop() {
                    orphans.push(c);
                }
            }
            State::Bound { addr, .. } => self
                .stack
                .shared
                .update_tables(|t| t.bound.retain(|b| *b != addr)),
            State::Unbound(_) | State::Closed => {}
        }
        orphans
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        // Dropping the handle closes the socket, like the last close() of a file.
        self.close();
    }
}
