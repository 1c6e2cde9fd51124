//! The calls running in the sandbox right now. A stopping node waits for
//! them to record their entries; a call still running when it can wait no
//! longer is given up: its own entry will never be recorded, and the node
//! records instead that it stopped with the call unfinished, so a call that
//! ran is never left without an entry (and never has two).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// One call in the sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Running {
    /// The ledger actor (`agent:NAME`, `operator:NAME`).
    pub actor: String,
    pub tool: String,
    /// When the call entered the sandbox, Unix nanoseconds.
    pub started_ns: u64,
}

#[derive(Debug)]
enum Stage {
    /// In the sandbox, or checking its output.
    Running(Running),
    /// Writing its ledger entry: the stop waits for it.
    Recording,
}

/// The registry of calls in the sandbox.
#[derive(Debug, Default)]
pub struct InFlight {
    calls: Mutex<BTreeMap<u64, Stage>>,
    changed: Condvar,
    next: AtomicU64,
}

/// A call's place in the registry, released when dropped.
#[derive(Debug)]
pub struct Ticket {
    owner: Arc<InFlight>,
    id: u64,
}

impl InFlight {
    fn calls(&self) -> MutexGuard<'_, BTreeMap<u64, Stage>> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a call entering the sandbox.
    pub fn start(self: &Arc<Self>, actor: &str, tool: &str) -> Ticket {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let started_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        self.calls().insert(
            id,
            Stage::Running(Running {
                actor: actor.to_string(),
                tool: tool.to_string(),
                started_ns,
            }),
        );
        Ticket {
            owner: Arc::clone(self),
            id,
        }
    }

    /// Calls registered now.
    pub fn len(&self) -> usize {
        self.calls().len()
    }

    /// Whether no call is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits until no call is in the sandbox or `deadline` passes, then
    /// gives up the calls still running (their tickets can no longer
    /// record) and returns them. Calls writing their entry are waited for
    /// past `deadline`, up to [`RECORDING_GRACE`] more (a group commit, not
    /// a tool).
    pub fn give_up_at(&self, deadline: Instant) -> Vec<Running> {
        let running = |calls: &BTreeMap<u64, Stage>| {
            calls
                .iter()
                .filter(|(_, s)| matches!(s, Stage::Running(_)))
                .map(|(id, _)| *id)
                .collect::<Vec<u64>>()
        };
        let mut calls = self.wait_while(self.calls(), deadline, |c| !running(c).is_empty());
        let given_up = running(&calls)
            .into_iter()
            .filter_map(|id| match calls.remove(&id) {
                Some(Stage::Running(r)) => Some(r),
                _ => None,
            })
            .collect();
        drop(self.wait_while(calls, deadline + RECORDING_GRACE, |c| !c.is_empty()));
        given_up
    }

    /// Waits on the registry while `busy` holds, until `deadline`.
    fn wait_while<'a>(
        &self,
        mut calls: MutexGuard<'a, BTreeMap<u64, Stage>>,
        deadline: Instant,
        busy: impl Fn(&BTreeMap<u64, Stage>) -> bool,
    ) -> MutexGuard<'a, BTreeMap<u64, Stage>> {
        while busy(&calls) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            calls = self
                .changed
                .wait_timeout(calls, left)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        calls
    }
}

/// How long past its deadline a stop waits for entries being written.
pub const RECORDING_GRACE: Duration = Duration::from_secs(1);

impl Ticket {
    /// Claims the right to record the call's entry: false when the node
    /// gave the call up (it records the stop instead).
    pub fn claim(&self) -> bool {
        let mut calls = self.owner.calls();
        match calls.get_mut(&self.id) {
            Some(stage) => {
                *stage = Stage::Recording;
                true
            }
            None => false,
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.owner.calls().remove(&self.id);
        self.owner.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finished_calls_are_waited_for_and_running_ones_given_up() {
        let reg = Arc::new(InFlight::default());
        let quick = reg.start("agent:a", "echo");
        let slow = reg.start("agent:b", "loop");
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            assert!(quick.claim());
            drop(quick);
        });
        let given_up = reg.give_up_at(Instant::now() + Duration::from_millis(200));
        releaser.join().expect("join");
        assert_eq!(given_up.len(), 1);
        assert_eq!(given_up[0].tool, "loop");
        // The given-up call can no longer record.
        assert!(!slow.claim());
        drop(slow);
        assert!(reg.is_empty());
    }

    #[test]
    fn a_call_writing_its_entry_is_waited_for_past_the_deadline() {
        let reg = Arc::new(InFlight::default());
        let writing = reg.start("agent:a", "echo");
        assert!(writing.claim());
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            drop(writing);
        });
        let given_up = reg.give_up_at(Instant::now());
        releaser.join().expect("join");
        assert!(given_up.is_empty());
        assert!(reg.is_empty());
    }
}
