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
    /// A one-shot closure (stored inline when small; see [`Job`]) — or,
    /// as [`Job::marker`], a *pull token* of a rescuer-equipped workqueue:
    /// take its oldest waiting task, if its rescuer has not
    /// (`workqueue/rescue.rs`; the queue is the task's `wq`). Not a variant
    /// of its own: two variants keep `Payload` at the size of a `Job` (the
    /// enum's tag lives in the niche of the `Job`'s vtable pointer), and
    /// the worklist slot with it (test `a_task_fits_the_slot_it_had`).
    Job(Job),
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
            Payload::Job(j) if j.is_marker() => "pull token".to_string(),
            Payload::Job(_) => "job".to_string(),
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
            Payload::Job(j) if j.is_marker() => "<pull token>".to_string(),
            Payload::Job(_) => "<job>".to_string(),
        }
    }
}

#[cfg(all(test, not(kwq_loom), target_pointer_width = "64"))]
mod tests {
    use super::*;

    /// A task is a `Job` (four words), the workqueue pointer and two bytes
    /// of bookkeeping: six words. One more (a third `Payload` variant, say)
    /// makes every worklist slot bigger, which the spawn benchmark pays for.
    #[test]
    fn a_task_fits_the_slot_it_had() {
        assert_eq!(std::mem::size_of::<Payload>(), std::mem::size_of::<Job>());
        assert_eq!(std::mem::size_of::<Task>(), 48);
    }
}
