//! The shootdown acknowledgement protocol, on its own so that `loom` can
//! model-check it (`tests/loom_shootdown.rs`): one mailbox per CPU, a
//! request queue and a count of the caller's own requests not yet
//! acknowledged.
//!
//! - [`post`](Mailboxes::post): the initiator first adds the number of
//!   targets to its own pending count, then queues one copy of the request
//!   in each target's mailbox and wakes the target.
//! - [`service`](Mailboxes::service): a CPU "takes the interrupt": it takes
//!   every queued request, applies each (drops the translations), then
//!   acknowledges each to its sender (decrements the sender's pending count,
//!   wakes the sender). Applying happens before acknowledging, and no
//!   mailbox lock is held while applying or while taking another mailbox's
//!   lock, so no lock order exists to get wrong.
//! - [`wait`](Mailboxes::wait): the initiator blocks until its pending count
//!   is zero, servicing the requests addressed to *it* whenever it is woken.
//!   That is what lets two CPUs shoot at each other: each one's wait serves
//!   the other's request.
//!
//! Built with `--cfg loom`, the locks, condition variables and atomics are
//! loom's, and `Mailboxes::wait_without_servicing`
//! (the deliberately broken variant: wait for acknowledgements and serve
//! nothing) exists so the model checker can show it deadlocks.

use std::collections::VecDeque;

#[cfg(loom)]
use loom::sync::{Condvar, Mutex, MutexGuard};
#[cfg(not(loom))]
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
#[cfg(not(loom))]
use std::time::Duration;

/// How long [`Mailboxes::wait`] waits for acknowledgements before it calls
/// the wait a deadlock (outside loom).
#[cfg(not(loom))]
pub const ACK_LIMIT: Duration = Duration::from_secs(10);

/// One CPU's mailbox.
#[derive(Debug)]
struct Mailbox<T> {
    inbox: Mutex<Inbox<T>>,
    /// Signalled when a request arrives or one of this CPU's requests is
    /// acknowledged.
    wake: Condvar,
}

#[derive(Debug)]
struct Inbox<T> {
    /// Requests addressed to this CPU: (sender, request).
    requests: VecDeque<(usize, T)>,
    /// This CPU's own requests that no target has acknowledged yet.
    pending: usize,
}

/// The mailboxes of `n` CPUs (numbered `0..n`).
#[derive(Debug)]
pub struct Mailboxes<T> {
    boxes: Vec<Mailbox<T>>,
    /// How long `wait` waits before calling it a deadlock, in milliseconds.
    #[cfg(not(loom))]
    ack_limit_ms: std::sync::atomic::AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    #[cfg(loom)]
    {
        m.lock().unwrap()
    }
    #[cfg(not(loom))]
    {
        // A panicking test thread cannot leave a queue torn in a way that
        // matters more than the panic itself.
        m.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<T: Clone> Mailboxes<T> {
    /// Empty mailboxes for `n` CPUs.
    pub fn new(n: usize) -> Self {
        Self {
            boxes: (0..n)
                .map(|_| Mailbox {
                    inbox: Mutex::new(Inbox {
                        requests: VecDeque::new(),
                        pending: 0,
                    }),
                    wake: Condvar::new(),
                })
                .collect(),
            #[cfg(not(loom))]
            ack_limit_ms: std::sync::atomic::AtomicU64::new(ACK_LIMIT.as_millis() as u64),
        }
    }

    /// Sets how long [`wait`](Self::wait) waits for acknowledgements before
    /// it panics ([`ACK_LIMIT`] by default).
    #[cfg(not(loom))]
    pub fn set_ack_limit(&self, limit: std::time::Duration) {
        let ms = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX).max(1);
        self.ack_limit_ms
            .store(ms, std::sync::atomic::Ordering::Relaxed);
    }

    #[cfg(not(loom))]
    fn ack_limit(&self) -> std::time::Duration {
        let ms = self.ack_limit_ms.load(std::sync::atomic::Ordering::Relaxed);
        std::time::Duration::from_millis(ms)
    }

    /// How many CPUs.
    pub fn len(&self) -> usize {
        self.boxes.len()
    }

    /// Whether there are no CPUs at all.
    pub fn is_empty(&self) -> bool {
        self.boxes.is_empty()
    }

    /// Posts `request` from CPU `from` to each of `targets` (which must not
    /// contain `from`); returns how many were posted. The caller then
    /// [`wait`](Self::wait)s.
    ///
    /// # Panics
    /// When a target is `from` or out of range (a caller bug).
    pub fn post(&self, from: usize, targets: &[usize], request: &T) -> usize {
        assert!(
            targets.iter().all(|&t| t != from && t < self.len()),
            "bad shootdown targets {targets:?} from CPU {from}"
        );
        // Count first: an acknowledgement may come before the last post.
        lock(&self.boxes[from].inbox).pending += targets.len();
        for &t in targets {
            let b = &self.boxes[t];
            lock(&b.inbox).requests.push_back((from, request.clone()));
            b.wake.notify_all();
        }
        targets.len()
    }

    /// Requests queued for `cpu`.
    pub fn queued(&self, cpu: usize) -> usize {
        lock(&self.boxes[cpu].inbox).requests.len()
    }

    /// `cpu`'s own requests not yet acknowledged.
    pub fn pending(&self, cpu: usize) -> usize {
        lock(&self.boxes[cpu].inbox).pending
    }

    /// `cpu` takes the interrupt: applies every queued request with `apply`
    /// (no lock held), then acknowledges each. Returns how many it served.
    pub fn service(&self, cpu: usize, mut apply: impl FnMut(&T)) -> usize {
        let taken: Vec<(usize, T)> = lock(&self.boxes[cpu].inbox).requests.drain(..).collect();
        self.serve(taken, &mut apply)
    }

    fn serve(&self, taken: Vec<(usize, T)>, apply: &mut impl FnMut(&T)) -> usize {
        for (_, r) in &taken {
            apply(r);
        }
        for (from, _) in &taken {
            let b = &self.boxes[*from];
            {
                let mut inbox = lock(&b.inbox);
                debug_assert!(inbox.pending > 0, "acknowledgement nobody waits for");
                inbox.pending -= 1;
            }
            b.wake.notify_all();
        }
        taken.len()
    }

    /// Blocks until every request `cpu` posted is acknowledged, servicing
    /// (with `apply`) the requests addressed to `cpu` meanwhile. Returns how
    /// many it served.
    ///
    /// # Panics
    /// Outside loom, when the requests are still unacknowledged after
    /// [`ACK_LIMIT`] (or [`set_ack_limit`](Self::set_ack_limit)), naming the CPUs that hold them: a target that never
    /// serves its mailbox (a CPU spinning with interrupts off, or one that
    /// stopped) would otherwise hang the test, as the kernel panics after
    /// its NMI reminders go unanswered.
    pub fn wait(&self, cpu: usize, mut apply: impl FnMut(&T)) -> usize {
        let b = &self.boxes[cpu];
        let mut served = 0;
        #[cfg(not(loom))]
        let started = std::time::Instant::now();
        let mut inbox = lock(&b.inbox);
        loop {
            if !inbox.requests.is_empty() {
                let taken: Vec<(usize, T)> = inbox.requests.drain(..).collect();
                drop(inbox);
                served += self.serve(taken, &mut apply);
                inbox = lock(&b.inbox);
                continue;
            }
            if inbox.pending == 0 {
                return served;
            }
            #[cfg(not(loom))]
            if started.elapsed() > self.ack_limit() {
                if std::thread::panicking() {
                    // Already failing (a space dropped while unwinding):
                    // give up the wait rather than abort the process.
                    return served;
                }
                let limit = self.ack_limit();
                let pending = inbox.pending;
                drop(inbox);
                let holders: Vec<usize> = (0..self.len())
                    .filter(|&t| {
                        lock(&self.boxes[t].inbox)
                            .requests
                            .iter()
                            .any(|r| r.0 == cpu)
                    })
                    .collect();
                panic!(
                    "CPU {cpu}: {pending} shootdown requests unacknowledged after {limit:?} \
                     (still queued at CPUs {holders:?}): a target that never serves its \
                     mailbox, a deadlock"
                );
            }
            inbox = self.block(b, inbox);
        }
    }

    /// The deliberately broken wait: blocks until `cpu`'s requests are
    /// acknowledged *without* servicing its own mailbox. Two CPUs shooting at
    /// each other this way deadlock; `tests/loom_shootdown.rs` shows that
    /// loom finds it. Only built with `--cfg loom`.
    #[cfg(loom)]
    pub fn wait_without_servicing(&self, cpu: usize) {
        let b = &self.boxes[cpu];
        let mut inbox = lock(&b.inbox);
        while inbox.pending != 0 {
            inbox = self.block(b, inbox);
        }
    }

    fn block<'a>(
        &self,
        b: &'a Mailbox<T>,
        inbox: MutexGuard<'a, Inbox<T>>,
    ) -> MutexGuard<'a, Inbox<T>> {
        #[cfg(loom)]
        {
            b.wake.wait(inbox).unwrap()
        }
        #[cfg(not(loom))]
        {
            // Timed, so that `wait` notices a target that never answers.
            b.wake
                .wait_timeout(
                    inbox,
                    (self.ack_limit() / 100).max(Duration::from_millis(1)),
                )
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0)
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_target_that_never_serves_is_reported_as_a_deadlock() {
        let m = Mailboxes::<u32>::new(3);
        m.set_ack_limit(Duration::from_millis(50));
        m.post(0, &[1, 2], &7);
        m.service(1, |_| {});
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| m.wait(0, |_| {})));
        let msg = *r.unwrap_err().downcast::<String>().unwrap();
        assert!(msg.contains("still queued at CPUs [2]"), "{msg}");
        assert!(msg.contains("deadlock"), "{msg}");
    }

    #[test]
    fn post_service_ack() {
        let m = Mailboxes::<u32>::new(3);
        assert_eq!(m.post(0, &[1, 2], &7), 2);
        assert_eq!((m.pending(0), m.queued(1), m.queued(2)), (2, 1, 1));
        let mut seen = Vec::new();
        assert_eq!(m.service(1, |r| seen.push(*r)), 1);
        assert_eq!(m.pending(0), 1);
        m.service(2, |r| seen.push(*r));
        assert_eq!((m.pending(0), seen), (0, vec![7, 7]));
        assert_eq!(m.wait(0, |_| unreachable!()), 0);
    }

    #[test]
    fn two_threads_shooting_at_each_other_finish() {
        for _ in 0..200 {
            let m = Arc::new(Mailboxes::<usize>::new(2));
            let hs: Vec<_> = (0..2)
                .map(|me| {
                    let m = Arc::clone(&m);
                    std::thread::spawn(move || {
                        m.post(me, &[1 - me], &me);
                        let mut got = Vec::new();
                        m.wait(me, |r| got.push(*r));
                        // The other's request may come after our wait ended.
                        while got.is_empty() {
                            m.service(me, |r| got.push(*r));
                            std::thread::yield_now();
                        }
                        got
                    })
                })
                .collect();
            for (me, h) in hs.into_iter().enumerate() {
                assert_eq!(h.join().unwrap(), vec![1 - me]);
            }
        }
    }
}
