//! Loom model of the worker pool's sleep/wake handshake (`pool/sleep.rs`,
//! protocol in `pool/mod.rs`): the real `Sleep` — idle list, counters,
//! `kick`, `go_idle`, `wait_woken`, `enter_blocking` — driven the way
//! `Pool::push` and `worker::main` drive it, with the facade's `Parker` for
//! sleep. The worklist has just the guarantee the handshake asks of `Fifo`
//! (publication ends with a SeqCst read-modify-write; emptiness is one
//! SeqCst load) and no more: the facade's loom `Fifo` is a mutex, which
//! would order the two sides of the handshake by itself.
//!
//! Property: a task pushed while workers are going idle, or while the only
//! running worker blocks, is run. A lost wake-up leaves its task on the
//! worklist with every worker parked, which loom reports as a deadlock
//! (every thread blocked), since the test thread waits for the task.
//!
//! Checked by mutation: without the worker's re-check in `wait_woken`, or
//! without `enter_blocking`'s kick, these models deadlock. Not covered: the
//! handshake's two SeqCst fences (`wait_woken`'s, and the one `kick` has
//! only under loom): with either removed loom still finds no execution
//! where the loads after it read a stale value (it models less than SeqCst
//! allows), so the argument for them is the protocol comment in
//! `pool/mod.rs`. Nor are the real `Fifo`'s guarantee
//! (documented there), the idle-timeout reaping (loom has no time: a timed
//! park is an untimed one) and worker creation (no model needs a new
//! worker; each keeps one idle in reserve).
//!
//! Run with `ci/loom.sh loom_pool`.

use crate::pool_sleep::{Kick, Presence, Sleep, SleepState, Sleeper};
use crate::sync::atomic::{AtomicBool, AtomicUsize, Ordering::*};
use crate::sync::{Arc, Condvar, Mutex, Parker, Unparker};
use kwq_policy::Concurrency;
use loom::thread;
use std::collections::VecDeque;
use std::time::Duration;

#[derive(Clone)]
struct Worker(Arc<(AtomicBool, Unparker, Presence)>);

impl Sleeper for Worker {
    fn woken(&self) -> &AtomicBool {
        &self.0 .0
    }
    fn same(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
    fn unpark(&self) {
        self.0 .1.unpark()
    }
    fn presence(&self) -> &Presence {
        &self.0 .2
    }
}

/// The worklist: tasks under a lock, and a count of published ones that
/// `is_empty` reads without it. A task is counted after it is stored, and
/// taken only after a count was, so a taken count always finds a task.
#[derive(Default)]
struct Worklist {
    tasks: Mutex<VecDeque<u32>>,
    published: AtomicUsize,
}

impl Worklist {
    fn push(&self, t: u32) {
        self.tasks.lock().push_back(t);
        self.published.fetch_add(1, SeqCst);
    }

    fn is_empty(&self) -> bool {
        self.published.load(SeqCst) == 0
    }

    fn pop(&self) -> Option<u32> {
        let mut n = self.published.load(SeqCst);
        loop {
            if n == 0 {
                return None;
            }
            match self.published.compare_exchange(n, n - 1, SeqCst, SeqCst) {
                Ok(_) => break,
                Err(now) => n = now,
            }
        }
        Some(
            self.tasks
                .lock()
                .pop_front()
                .expect("a counted task is stored"),
        )
    }
}

/// The handshake's fields (the real pool keeps them as fields of its own).
struct Counters {
    concurrency: Concurrency,
    nr_running: AtomicUsize,
    nr_idle: AtomicUsize,
    nr_workers: AtomicUsize,
    idle: Mutex<Vec<Worker>>,
}

impl SleepState for Counters {
    type W = Worker;
    fn concurrency(&self) -> Concurrency {
        self.concurrency
    }
    fn max_workers(&self) -> usize {
        8
    }
    fn nr_running(&self) -> &AtomicUsize {
        &self.nr_running
    }
    fn nr_idle(&self) -> &AtomicUsize {
        &self.nr_idle
    }
    fn nr_workers(&self) -> &AtomicUsize {
        &self.nr_workers
    }
    fn idle(&self) -> &Mutex<Vec<Worker>> {
        &self.idle
    }
}

/// A pool without threads of its own: the model's threads are its workers.
struct Pool {
    counters: Counters,
    worklist: Worklist,
    dying: AtomicBool,
    /// Tasks run so far, and a signal for the test thread.
    ran: Mutex<usize>,
    ran_cv: Condvar,
    /// Task 1 blocks (inside `enter_blocking` / `exit_blocking`) until
    /// task 2 ran.
    second_ran: Mutex<bool>,
    second_cv: Condvar,
}

impl Pool {
    fn new(concurrency: usize) -> Arc<Pool> {
        Arc::new(Pool {
            counters: Counters {
                concurrency: Concurrency::Managed(concurrency),
                nr_running: AtomicUsize::new(0),
                nr_idle: AtomicUsize::new(0),
                nr_workers: AtomicUsize::new(0),
                idle: Mutex::new(Vec::new()),
            },
            worklist: Worklist::default(),
            dying: AtomicBool::new(false),
            ran: Mutex::new(0),
            ran_cv: Condvar::new(),
            second_ran: Mutex::new(false),
            second_cv: Condvar::new(),
        })
    }

    fn sleep(&self) -> Sleep<'_, Counters> {
        Sleep(&self.counters)
    }

    fn has_work(&self) -> bool {
        !self.worklist.is_empty()
    }

    /// `Pool::push`. A request for a new worker (`Kick::CreateWorker`,
    /// possible while a worker is between leaving the idle list and
    /// counting as running) is ignored: the models check that the workers
    /// there are suffice, as they must, since none of them is listed idle
    /// then and each re-checks the worklist before it parks.
    fn push(&self, task: u32) {
        self.worklist.push(task);
        let _: Kick = self.sleep().kick(|| self.has_work());
    }

    /// `worker::main` with `run_until_idle` reduced to popping; task 1
    /// blocks as described on `second_ran`.
    fn worker(pool: &Arc<Pool>, me: Worker, parker: Parker) -> thread::JoinHandle<()> {
        let pool = pool.clone();
        thread::spawn(move || {
            let p = &*pool;
            while p.sleep().wait_woken(
                &me,
                &parker,
                Duration::from_secs(1),
                || p.has_work(),
                || p.dying.load(SeqCst),
            ) {
                while let Some(task) = p.worklist.pop() {
                    p.run(task);
                    if p.sleep().over_target() {
                        break;
                    }
                }
                p.sleep().go_idle(me.clone());
            }
        })
    }

    fn run(&self, task: u32) {
        match task {
            1 => {
                let _: Kick = self.sleep().enter_blocking(|| self.has_work());
                let mut g = self.second_ran.lock();
                while !*g {
                    g = self.second_cv.wait(g);
                }
                drop(g);
                self.sleep().exit_blocking();
            }
            2 => {
                *self.second_ran.lock() = true;
                self.second_cv.notify_all();
            }
            _ => {}
        }
        *self.ran.lock() += 1;
        self.ran_cv.notify_all();
    }

    /// Waits until `n` tasks ran, then tears the pool down (`Pool::shutdown`).
    fn finish(&self, n: usize, workers: Vec<thread::JoinHandle<()>>) {
        let mut g = self.ran.lock();
        while *g < n {
            g = self.ran_cv.wait(g);
        }
        drop(g);
        self.dying.store(true, SeqCst);
        self.sleep().unpark_idle();
        for w in workers {
            w.join().unwrap();
        }
        assert!(self.worklist.is_empty());
    }
}

/// A worker registered idle before its thread runs (`Pool::create_worker`).
fn idle_worker(pool: &Arc<Pool>) -> thread::JoinHandle<()> {
    let parker = Parker::new();
    let me = Worker(Arc::new((
        AtomicBool::new(false),
        parker.unparker(),
        Presence::new(),
    )));
    pool.sleep().add_idle(me.clone());
    Pool::worker(pool, me, parker)
}

/// A worker that was woken to run a task and is about to run out of work
/// (counted running, not listed): it goes idle while the task is pushed.
fn running_worker(pool: &Arc<Pool>, first: u32) -> thread::JoinHandle<()> {
    let parker = Parker::new();
    let me = Worker(Arc::new((
        AtomicBool::new(false),
        parker.unparker(),
        Presence::new(),
    )));
    pool.sleep().add_idle(me.clone());
    pool.worklist.push(first);
    assert_eq!(pool.sleep().kick(|| pool.has_work()), Kick::Done);
    assert!(me.woken().load(SeqCst), "the setup's kick took the worker");
    Pool::worker(pool, me, parker)
}

#[test]
fn a_task_pushed_while_the_worker_goes_idle_is_run() {
    loom::model(|| {
        let pool = Pool::new(1);
        let w = running_worker(&pool, 0);
        pool.push(0);
        pool.finish(2, vec![w]);
    });
}

#[test]
fn tasks_pushed_from_two_threads_at_idle_workers_are_run() {
    loom::model(|| {
        let pool = Pool::new(2);
        let workers = vec![idle_worker(&pool), idle_worker(&pool)];
        let other = {
            let pool = pool.clone();
            thread::spawn(move || pool.push(0))
        };
        pool.push(0);
        other.join().unwrap();
        pool.finish(2, workers);
    });
}

#[test]
fn a_worker_that_blocks_gets_a_replacement_for_the_task_it_waits_for() {
    // Concurrency 1: task 1 blocks until task 2 ran, so task 2 must go to
    // the idle worker even though the pool's one running slot is taken —
    // the blocked worker stops counting (cmwq's concurrency management).
    loom::model(|| {
        let pool = Pool::new(1);
        let w = running_worker(&pool, 1);
        let spare = idle_worker(&pool);
        pool.push(2);
        pool.finish(2, vec![w, spare]);
    });
}
