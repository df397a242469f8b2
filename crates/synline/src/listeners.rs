//! The daemon's listeners: the engine sockets (owned by the main thread), the XDP program's
//! map, the application listeners behind them, and the list the workers drain, all changed
//! together at start and on SIGHUP (reload).
//!
//! A reload is a diff, applied listener by listener, the way `listen()`, `setsockopt()` and
//! `close()` would change a kernel listener in place:
//! - **kept, settings changed**: `setsockopt` (the engine's settings are atomics) and
//!   `listen()` again for a new backlog; request socks in flight stay in the workers' tables
//!   and complete under the new settings, as a kernel listener's do;
//! - **added**: a new socket, bound and listening, then in the XDP map (with `--accept
//!   kernel`, once an application listens there);
//! - **removed**: out of the XDP map first (its SYNs reach the kernel again), then closed:
//!   as Linux's `close()` of a listener, its requests die and children nobody took are
//!   dropped.
//!
//! The workers see a new list at their next round: they hold `Arc<Listener>`s, published
//! with a generation number (one atomic load per round when nothing changed).

use crate::app_listener::{self, AppListener};
use crate::config::{Config, ListenerSpec};
use anyhow::{anyhow, Result};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use synline_core::{AddressFamily, Listener, Socket, Stack};
use synline_xdp::{SockDiag, XdpProgram};

/// The listener list the workers drain.
#[derive(Default)]
pub struct Published {
    generation: AtomicU64,
    list: Mutex<Arc<Vec<Arc<Listener>>>>,
}

/// A worker's copy of [`Published`].
pub struct Cached {
    generation: u64,
    pub list: Arc<Vec<Arc<Listener>>>,
}

impl Published {
    fn publish(&self, list: Vec<Arc<Listener>>) {
        if let Ok(mut l) = self.list.lock() {
            *l = Arc::new(list);
        }
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// A copy for a worker.
    pub fn cached(&self) -> Cached {
        Cached {
            generation: self.generation.load(Ordering::Acquire),
            list: self.list.lock().map(|l| l.clone()).unwrap_or_default(),
        }
    }

    /// Brings `c` up to date if the list changed since.
    #[inline]
    pub fn refresh(&self, c: &mut Cached) {
        if self.generation.load(Ordering::Acquire) != c.generation {
            *c = self.cached();
        }
    }
}

struct Entry {
    spec: ListenerSpec,
    sock: Socket,
}

/// The listener set.
pub struct Listeners {
    stack: Stack,
    /// The `[stack]` settings as configured (a reload cannot change them).
    stack_given: synline_core::StackConfig,
    entries: Vec<Entry>,
    pub apps: Vec<AppListener>,
    pub published: Arc<Published>,
    /// `--accept kernel`: listeners enter the XDP map when an application listens.
    kernel: bool,
}

fn open_socket(stack: &Stack, spec: &ListenerSpec) -> Result<Socket> {
    let fam = if spec.addr.is_ipv6() {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    };
    let mut s = stack.socket(fam).map_err(|e| anyhow!("socket(): {e}"))?;
    s.set_config(spec.config)
        .map_err(|e| anyhow!("setsockopt on {}: {e}", spec.addr))?;
    s.bind(spec.addr)
        .map_err(|e| anyhow!("bind({}): {e}", spec.addr))?;
    s.listen(spec.backlog)
        .map_err(|e| anyhow!("listen({}): {e}", spec.addr))?;
    Ok(s)
}

impl Listeners {
    /// The engine sockets of `config` (nothing in the XDP map yet: see [`Listeners::attach`]).
    pub fn open(stack: &Stack, config: &Config, kernel: bool) -> Result<Listeners> {
        let mut l = Listeners {
            stack: stack.clone(),
            stack_given: config.stack,
            entries: Vec::new(),
            apps: Vec::new(),
            published: Arc::default(),
            kernel,
        };
        for spec in &config.listeners {
            let sock = open_socket(stack, spec)?;
            l.entries.push(Entry {
                spec: spec.clone(),
                sock,
            });
        }
        l.rebuild();
        Ok(l)
    }

    fn listener(e: &Entry) -> Arc<Listener> {
        e.sock.listener().expect("listening").clone()
    }

    fn app(&self, e: &Entry) -> AppListener {
        AppListener::new(&e.spec, Self::listener(e), self.stack.config().somaxconn)
    }

    /// Republishes the workers' list and rebuilds the application watch, keeping the state
    /// of the watches whose listener and settings did not change.
    fn rebuild(&mut self) {
        self.published
            .publish(self.entries.iter().map(Self::listener).collect());
        if self.kernel {
            let old = std::mem::take(&mut self.apps);
            let mut apps = Vec::new();
            for e in &self.entries {
                match old
                    .iter()
                    .position(|a| a.addr == e.spec.addr && a.spec_is(&e.spec))
                {
                    Some(i) => apps.push(old[i].clone()),
                    None => apps.push(self.app(e)),
                }
            }
            self.apps = apps;
        }
    }

    /// The engine listeners, in order.
    pub fn engine_listeners(&self) -> Vec<Arc<Listener>> {
        self.entries.iter().map(Self::listener).collect()
    }

    /// Log mode: every listener goes into the XDP map now. Kernel mode: the first look at the
    /// application listeners decides (app_listener.rs).
    pub fn attach(
        &mut self,
        prog: &XdpProgram,
        diag: Option<&mut SockDiag>,
    ) -> Result<Vec<app_listener::Change>> {
        match diag {
            Some(d) => app_listener::poll(d, &mut self.apps, prog, true),
            None => {
                for e in &self.entries {
                    prog.add_listener(e.spec.addr)?;
                }
                Ok(Vec::new())
            }
        }
    }

    /// Applies a new configuration (module docs); returns what changed, for the log. On an
    /// error part-way the set is what was applied until then, and consistent.
    pub fn reload(
        &mut self,
        new: &Config,
        prog: &XdpProgram,
        diag: Option<&mut SockDiag>,
    ) -> Result<Vec<String>> {
        let mut said = Vec::new();
        let applied = self.apply(new, prog, &mut said);
        // Whatever happened, the workers' list and the application watch follow the set as
        // it now is.
        self.entries
            .sort_by_key(|e| new.listeners.iter().position(|s| s.addr == e.spec.addr));
        self.rebuild();
        applied?;
        if let Some(d) = diag {
            for c in app_listener::poll(d, &mut self.apps, prog, false)? {
                said.push(app_listener::describe(&c));
            }
        }
        Ok(said)
    }

    fn apply(&mut self, new: &Config, prog: &XdpProgram, said: &mut Vec<String>) -> Result<()> {
        if new.stack != self.stack_given {
            said.push("[stack] settings change only with a restart; kept as they were".into());
        }
        // Removed.
        let mut i = 0;
        while i < self.entries.len() {
            let addr = self.entries[i].spec.addr;
            if new.listeners.iter().any(|s| s.addr == addr) {
                i += 1;
                continue;
            }
            prog.remove_listener(addr)?;
            let mut e = self.entries.remove(i);
            let orphans = e.sock.close();
            said.push(format!(
                "listener {addr} removed{}",
                if orphans.is_empty() {
                    String::new()
                } else {
                    format!(" ({} unaccepted connections dropped)", orphans.len())
                }
            ));
        }
        for spec in &new.listeners {
            match self.entries.iter_mut().find(|e| e.spec.addr == spec.addr) {
                Some(e) if e.spec == *spec => {}
                Some(e) => {
                    e.sock
                        .set_config(spec.config)
                        .map_err(|err| anyhow!("setsockopt on {}: {err}", spec.addr))?;
                    e.sock
                        .listen(spec.backlog)
                        .map_err(|err| anyhow!("listen({}): {err}", spec.addr))?;
                    e.spec = spec.clone();
                    said.push(format!(
                        "listener {} changed (requests in flight kept)",
                        spec.addr
                    ));
                }
                None => {
                    let sock = open_socket(&self.stack, spec)?;
                    if !self.kernel {
                        prog.add_listener(spec.addr)?;
                    }
                    self.entries.push(Entry {
                        spec: spec.clone(),
                        sock,
                    });
                    said.push(format!("listener {} added", spec.addr));
                }
            }
        }
        Ok(())
    }
}
