//! Call slots: the pooling allocator has room for a fixed number of
//! instances, so calls beyond that many wait here for a slot (up to a
//! bound) instead of failing inside wasmtime. A call that cannot get a slot
//! in time is refused with a reason, never crashed.

use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// A counting gate of `capacity` concurrent calls.
#[derive(Debug)]
pub(crate) struct CallSlots {
    capacity: u32,
    busy: Mutex<u32>,
    freed: Condvar,
}

/// A held slot; dropping it frees the slot.
#[derive(Debug)]
pub(crate) struct Slot<'a> {
    slots: &'a CallSlots,
}

impl CallSlots {
    pub(crate) fn new(capacity: u32) -> Self {
        Self {
            capacity: capacity.max(1),
            busy: Mutex::new(0),
            freed: Condvar::new(),
        }
    }

    pub(crate) fn capacity(&self) -> u32 {
        self.capacity
    }

    /// Takes a slot, waiting at most `patience` for one to free up.
    pub(crate) fn acquire(&self, patience: Duration) -> Option<Slot<'_>> {
        let until = Instant::now() + patience;
        let mut busy = self.busy.lock().unwrap_or_else(PoisonError::into_inner);
        while *busy >= self.capacity {
            let left = until.checked_duration_since(Instant::now())?;
            busy = self
                .freed
                .wait_timeout(busy, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        *busy += 1;
        Some(Slot { slots: self })
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut busy = self
            .slots
            .busy
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *busy = busy.saturating_sub(1);
        self.slots.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn waits_for_a_free_slot_and_gives_up_after_its_patience() {
        let slots = Arc::new(CallSlots::new(2));
        let a = slots.acquire(Duration::ZERO).expect("first");
        let _b = slots.acquire(Duration::ZERO).expect("second");
        assert!(slots.acquire(Duration::from_millis(20)).is_none(), "full");
        let waiter = {
            let slots = Arc::clone(&slots);
            std::thread::spawn(move || slots.acquire(Duration::from_secs(30)).is_some())
        };
        std::thread::sleep(Duration::from_millis(20));
        drop(a);
        assert!(waiter.join().expect("waiter"), "got the freed slot");
    }

    #[test]
    fn zero_capacity_means_one() {
        assert_eq!(CallSlots::new(0).capacity(), 1);
    }
}
