//! A session's mailbox: a bounded queue with many senders (the router, modules, other nodes'
//! deliveries) and one receiver (the session's connection), which holds no allocation while it
//! is empty.
//!
//! Every bound session has one, and nearly all of them are empty nearly all the time. tokio's
//! `mpsc` allocates its channel and a first block of 32 slots up front: about 1 KiB per idle
//! session, measured with heaptrack at 10,000 sessions. Here the queue is a `VecDeque` behind
//! a mutex (senders only `try_send`, so nobody waits on it), freed whenever it is drained, and
//! the receiver's waker is kept in the same place.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

pub use tokio::sync::mpsc::error::{TryRecvError, TrySendError};

use crate::Outbound;

/// A new mailbox holding at most `capacity` items (at least one).
pub fn mailbox(capacity: usize) -> (Mailbox, Inbox) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            queue: VecDeque::new(),
            waker: None,
            senders: 1,
            closed: false,
        }),
        capacity: capacity.max(1),
        position: AtomicU64::new(0),
    });
    (
        Mailbox {
            shared: shared.clone(),
        },
        Inbox { shared },
    )
}

struct Shared {
    state: Mutex<State>,
    capacity: usize,
    /// The furthest session-table position among what was put here (see
    /// [`Mailbox::note_position`]).
    position: AtomicU64,
}

struct State {
    queue: VecDeque<Outbound>,
    /// The receiver, when it waits for an item.
    waker: Option<Waker>,
    /// Live [`Mailbox`] handles; at zero the receiver sees the end.
    senders: usize,
    /// The receiver is gone: sending fails.
    closed: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the queue consistent (every change is one push,
        // pop or flag), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The sending half. Bounded: a session that does not drain its mailbox is not sent more.
pub struct Mailbox {
    shared: Arc<Shared>,
}

impl Mailbox {
    /// Queues `item`, or gives it back: `Full` when `capacity` items wait, `Closed` when the
    /// receiver is gone.
    pub fn try_send(&self, item: Outbound) -> Result<(), TrySendError<Outbound>> {
        let mut state = self.shared.lock();
        if state.closed {
            return Err(TrySendError::Closed(item));
        }
        if state.queue.len() >= self.shared.capacity {
            return Err(TrySendError::Full(item));
        }
        state.queue.push_back(item);
        let waker = state.waker.take();
        drop(state);
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }

    /// Records that what is being put here is a consequence of session-table position
    /// `position` ([`corvid_core::caused_at`]): what the session's client answers follows from
    /// it too, and [`Inbox::position`] says so.
    pub fn note_position(&self, position: u64) {
        self.shared.position.fetch_max(position, Ordering::Relaxed);
    }

    /// True once the receiver is gone.
    pub fn is_closed(&self) -> bool {
        self.shared.lock().closed
    }
}

impl Clone for Mailbox {
    fn clone(&self) -> Self {
        self.shared.lock().senders += 1;
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl Drop for Mailbox {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.senders -= 1;
        let waker = if state.senders == 0 {
            state.waker.take()
        } else {
            None
        };
        drop(state);
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl std::fmt::Debug for Mailbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.shared.lock();
        f.debug_struct("Mailbox")
            .field("queued", &state.queue.len())
            .field("closed", &state.closed)
            .finish()
    }
}

/// The receiving half.
pub struct Inbox {
    shared: Arc<Shared>,
}

impl Inbox {
    /// The next item; `None` once every sender is gone and the queue is empty.
    pub async fn recv(&mut self) -> Option<Outbound> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// The furthest session-table position noted with what came through this mailbox (0:
    /// none): the position what the client sends next is a consequence of.
    pub fn position(&self) -> u64 {
        self.shared.position.load(Ordering::Relaxed)
    }

    /// [`Inbox::recv`] as a poll.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Outbound>> {
        let mut state = self.shared.lock();
        if let Some(item) = take(&mut state) {
            return Poll::Ready(Some(item));
        }
        if state.senders == 0 {
            return Poll::Ready(None);
        }
        match &state.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => state.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// The next item if one is queued.
    pub fn try_recv(&mut self) -> Result<Outbound, TryRecvError> {
        let mut state = self.shared.lock();
        match take(&mut state) {
            Some(item) => Ok(item),
            None if state.senders == 0 => Err(TryRecvError::Disconnected),
            None => Err(TryRecvError::Empty),
        }
    }
}

/// Pops the next item; a queue left empty gives its memory back.
fn take(state: &mut State) -> Option<Outbound> {
    let item = state.queue.pop_front()?;
    if state.queue.is_empty() {
        state.queue = VecDeque::new();
    }
    Some(item)
}

impl Drop for Inbox {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.closed = true;
        // Dropped outside the lock: an item's drop may do anything.
        let queued = std::mem::take(&mut state.queue);
        state.waker = None;
        drop(state);
        drop(queued);
    }
}

impl std::fmt::Debug for Inbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbox")
            .field("queued", &self.shared.lock().queue.len())
            .finish()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap: a panic is a failure with a message.
mod tests {
    use std::time::Duration;

    use corvid_stanza::{Kind, Stanza, StreamCondition, StreamError};
    use corvid_xml::Element;

    use super::*;

    fn item(n: usize) -> Outbound {
        let el = Element::new("message", corvid_stanza::ns::CLIENT).with_attr("id", n.to_string());
        Outbound::Stanza(Box::new(Stanza::from_trusted(Kind::Message, el)))
    }

    fn id(o: Outbound) -> String {
        match o {
            Outbound::Stanza(st) => st.id().unwrap_or_default().to_string(),
            Outbound::Close(e) => format!("close {:?}", e.condition),
        }
    }

    #[tokio::test]
    async fn items_arrive_in_order_up_to_the_capacity() {
        let (tx, mut rx) = mailbox(3);
        for n in 0..3 {
            tx.try_send(item(n)).unwrap();
        }
        assert!(matches!(tx.try_send(item(3)), Err(TrySendError::Full(_))));
        let got: Vec<String> = (0..3).map(|_| id(rx.try_recv().unwrap())).collect();
        assert_eq!(got, ["0", "1", "2"]);
        assert!(matches!(rx.try_recv(), Err(TryRecvError::Empty)));
        // Drained, there is room again.
        tx.try_send(item(4)).unwrap();
        assert_eq!(id(rx.recv().await.unwrap()), "4");
    }

    #[tokio::test]
    async fn a_waiting_receiver_is_woken_by_a_send_from_another_task() {
        let (tx, mut rx) = mailbox(8);
        let sender = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            tx.clone().try_send(item(7)).unwrap();
            tx
        });
        let got = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("woken");
        assert_eq!(id(got.unwrap()), "7");
        drop(sender.await.unwrap());
    }

    #[tokio::test]
    async fn the_receiver_sees_the_end_once_every_sender_is_gone() {
        let (tx, mut rx) = mailbox(8);
        let other = tx.clone();
        tx.try_send(Outbound::Close(Box::new(StreamError::new(
            StreamCondition::Conflict,
        ))))
        .unwrap();
        drop(tx);
        let waiter = tokio::spawn(async move {
            let first = rx.recv().await.map(id);
            let end = rx.recv().await.map(id);
            (first, end)
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(other);
        let (first, end) = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken at the end")
            .unwrap();
        assert_eq!(first.as_deref(), Some("close Conflict"));
        assert_eq!(end, None);
    }

    #[test]
    fn sending_to_a_dropped_receiver_fails_and_gives_the_item_back() {
        let (tx, rx) = mailbox(8);
        tx.try_send(item(1)).unwrap();
        assert!(!tx.is_closed());
        drop(rx);
        assert!(tx.is_closed());
        match tx.try_send(item(2)) {
            Err(TrySendError::Closed(o)) => assert_eq!(id(o), "2"),
            other => panic!("expected Closed, got {other:?}"),
        }
    }

    #[test]
    fn a_drained_mailbox_holds_no_memory() {
        let (tx, mut rx) = mailbox(8);
        for n in 0..5 {
            tx.try_send(item(n)).unwrap();
        }
        while rx.try_recv().is_ok() {}
        assert_eq!(rx.shared.lock().queue.capacity(), 0);
    }

    #[test]
    fn the_inbox_reports_the_furthest_position_noted_by_any_sender() {
        let (tx, rx) = mailbox(4);
        assert_eq!(rx.position(), 0);
        let other = tx.clone();
        tx.note_position(10);
        other.note_position(7);
        assert_eq!(rx.position(), 10, "a lower position never moves it back");
        other.note_position(12);
        assert_eq!(rx.position(), 12);
    }
}
