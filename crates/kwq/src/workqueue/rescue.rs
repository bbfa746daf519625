//! Rescuers: the kernel's `WQ_MEM_RECLAIM`, for workqueues built with
//! [`WorkqueueBuilder::rescuer`](crate::WorkqueueBuilder::rescuer).
//!
//! A queue that must make progress even when its pool cannot provide a
//! worker — every worker blocked at the worker cap, or thread creation
//! failing — keeps one thread of its own, created with the queue (building
//! fails if it cannot be). Protocol:
//!
//! * Tasks of such a queue do not go onto the pool's shared worklist
//!   themselves. They wait in the queue's own FIFO (`Rescue::tasks`, with
//!   the time each arrived), and a *pull token* goes onto the worklist for
//!   each. A pool worker that pops a token takes the oldest waiting task
//!   and processes it as it would have; a token that finds the FIFO empty
//!   does nothing (the rescuer took that task).
//! * The rescuer thread sleeps while the FIFO is empty. While it is not,
//!   it looks every `MAYDAY_INTERVAL`: when the oldest task has waited
//!   `MAYDAY_TIMEOUT` and the pool cannot provide a worker (no idle worker,
//!   and the cap is reached or creation is failing), it takes that task
//!   and runs it itself, as a worker of the pool (counted as running while
//!   it does), then looks again — the kernel's mayday timer and
//!   `rescuer_thread`.
//! * Exactly one party takes each task, under the FIFO's lock; its flush
//!   colour and `max_active` slot are retired by whoever runs it, as for
//!   any task.

use crate::exec::Pool;
use crate::report::{Warning, WarningKind};
use crate::sync::{Arc, Condvar, Mutex};
use crate::task::Task;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How long the oldest task must have waited before the rescuer steps in
/// (the kernel's `MAYDAY_INITIAL_TIMEOUT`, 10 ms).
const MAYDAY_TIMEOUT: Duration = Duration::from_millis(10);
/// How often a rescuer looks while tasks wait (the kernel's
/// `MAYDAY_INTERVAL` is 100 ms; a thread of our own can afford less).
const MAYDAY_INTERVAL: Duration = Duration::from_millis(5);

struct State {
    tasks: VecDeque<(Instant, Task)>,
    /// The rescuer sleeps untimed (FIFO empty): a push must notify.
    sleeping: bool,
    stop: bool,
    last_report: Option<Instant>,
    unreported: u64,
}

/// A rescuer-equipped queue's FIFO and its rescuer's wake-up.
pub(crate) struct Rescue {
    state: Mutex<State>,
    cv: Condvar,
}

impl Rescue {
    /// Creates the FIFO and starts the rescuer thread for queue `name` on
    /// `pool`.
    pub(crate) fn start(pool: &Arc<Pool>, name: &str) -> std::io::Result<Arc<Rescue>> {
        let r = Arc::new(Rescue {
            state: Mutex::new(State {
                tasks: VecDeque::new(),
                sleeping: false,
                stop: false,
                last_report: None,
                unreported: 0,
            }),
            cv: Condvar::new(),
        });
        let (r2, pool2, name2) = (r.clone(), pool.clone(), name.to_string());
        crate::spawn::spawn(
            pool.cfg.spawn_handler.as_ref(),
            format!(
                "{}/rescuer:{}",
                pool.cfg.thread_name,
                name.replace('\0', "")
            ),
            pool.cfg.stack_size,
            move || r2.run(&pool2, &name2),
        )?;
        Ok(r)
    }

    /// Queues `task` in the FIFO; the caller pushes a pull token.
    pub(crate) fn push(&self, task: Task) {
        let mut s = self.state.lock();
        s.tasks.push_back((Instant::now(), task));
        let wake = s.sleeping;
        drop(s);
        if wake {
            self.cv.notify_one();
        }
    }

    /// A pool worker popped a pull token: the oldest waiting task, if the
    /// rescuer has not taken it.
    pub(crate) fn pull(&self) -> Option<Task> {
        self.state.lock().tasks.pop_front().map(|(_, t)| t)
    }

    /// The queue is destroyed: the rescuer exits once nothing waits.
    pub(crate) fn stop(&self) {
        self.state.lock().stop = true;
        self.cv.notify_one();
    }

    /// The rescuer thread: rescue tasks until the queue is destroyed and
    /// nothing waits (tasks left then are pulled by workers as usual).
    fn run(&self, pool: &Arc<Pool>, name: &str) {
        let mut helper = crate::exec::Helper::new(pool);
        loop {
            let Some(task) = self.wait_for_mayday(pool) else {
                return;
            };
            self.report(pool, name);
            helper.run(task);
        }
    }

    /// Waits until a task should be rescued and takes it; `None` on stop.
    fn wait_for_mayday(&self, pool: &Pool) -> Option<Task> {
        let mut s = self.state.lock();
        loop {
            if s.stop && s.tasks.is_empty() {
                return None;
            }
            match s.tasks.front() {
                None => {
                    s.sleeping = true;
                    s = self.cv.wait(s);
                    s.sleeping = false;
                }
                Some((since, _)) => {
                    if since.elapsed() >= MAYDAY_TIMEOUT && pool.cannot_provide_worker() {
                        return s.tasks.pop_front().map(|(_, t)| t);
                    }
                    s = self.cv.wait_timeout(s, MAYDAY_INTERVAL);
                }
            }
        }
    }

    /// Reports a rescue, at most once a second (with a count).
    fn report(&self, pool: &Pool, name: &str) {
        let now = Instant::now();
        let n = {
            let mut s = self.state.lock();
            s.unreported += 1;
            if s.last_report
                .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
            {
                return;
            }
            s.last_report = Some(now);
            std::mem::take(&mut s.unreported)
        };
        pool.cfg.warn(
            Warning::new(
                WarningKind::Rescued,
                format!(
                    "pool {} could not provide a worker; workqueue '{name}''s rescuer ran {n} \
                     item(s)",
                    pool.name()
                ),
            )
            .on_queue(name),
        );
    }
}
