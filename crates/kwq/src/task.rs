//! Tokens on worklists.
//!
//! A [`Task`] is what a pool's worklist holds: either an instance of a
//! persistent [`Work`](crate::Work) item (identified by the item's `Arc` and
//! the instance number it was queued as) or a one-shot closure. Every task
//! remembers the workqueue it was queued on and the flush colour it was
//! counted under; the worker that consumes it — by running it or by dropping
//! it as stale — *retires* it on that workqueue exactly once.

use crate::job::Job;
use crate::sync::Arc;
use crate::work::WorkInner;
use crate::workqueue::WqInner;

pub(crate) enum Payload {
    /// Instance `seq` of a persistent work item.
    Work { item: Arc<WorkInner>, seq: u64 },
    /// A one-shot closure (stored inline when small; see [`Job`]).
    Job(Job),
    /// A pull token of a rescuer-equipped workqueue: take its oldest
    /// waiting task, if its rescuer has not (`workqueue/rescue.rs`).
    Pull(Arc<crate::workqueue::Rescue>),
}

pub(crate) struct Task {
    pub(crate) payload: Payload,
    pub(crate) wq: Arc<WqInner>,
    /// Flush colour the task was counted under (see `workqueue::flush`).
    pub(crate) color: u8,
    /// Holds one of its workqueue's `max_active` slots already (it was
    /// activated from the inactive list).
    pub(crate) admitted: bool,
}

impl std::fmt::Debug for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match &self.payload {
            Payload::Work { item, seq } => format!("work '{}' #{seq}", item.name()),
            Payload::Job(_) => "job".to_string(),
            Payload::Pull(_) => "pull token".to_string(),
        };
        f.debug_struct("Task")
            .field("what", &what)
            .field("wq", &self.wq.name())
            .field("color", &self.color)
            .field("admitted", &self.admitted)
            .finish()
    }
}

impl Task {
    /// A short description for dumps and panic reports.
    pub(crate) fn describe(&self) -> String {
        match &self.payload {
            Payload::Work { item, .. } => item.name().to_string(),
            Payload::Job(_) => "<job>".to_string(),
            Payload::Pull(_) => "<pull token>".to_string(),
        }
    }
}
