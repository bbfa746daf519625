//! `kwq demo`: a short, readable tour of the runtime's guarantees on a real
//! pool. Every claim printed is checked; a violated one makes the demo fail.

use anyhow::{ensure, Result};
use clap::Args;
use kwq::{DelayedWork, Runtime, Work, Workqueue};
use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Barrier};
use std::time::{Duration, Instant};

/// Arguments of `kwq demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Requeues in the non-reentrancy section.
    #[arg(long, default_value_t = 20_000, value_parser = crate::args::count::<usize>(100, 100_000_000))]
    requeues: usize,
}

struct Log {
    t0: Instant,
    out: std::io::StdoutLock<'static>,
}

impl Log {
    fn say(&mut self, msg: impl AsRef<str>) -> Result<()> {
        let ms = self.t0.elapsed().as_secs_f64() * 1e3;
        writeln!(self.out, "[{ms:8.2} ms] {}", msg.as_ref())?;
        Ok(())
    }
    fn head(&mut self, msg: &str) -> Result<()> {
        writeln!(self.out, "\n== {msg}")?;
        Ok(())
    }
}

/// Runs the demo.
pub fn run(args: DemoArgs) -> Result<ExitCode> {
    let mut log = Log {
        t0: Instant::now(),
        out: std::io::stdout().lock(),
    };
    let rt = kwq::RuntimeBuilder::new()
        .concurrency(2)
        .thread_name("demo")
        .build()?;
    let wq = Workqueue::builder("demo").runtime(&rt).build()?;
    log.say(format!(
        "runtime: concurrency 2; workqueue '{}' max_active {}",
        wq.name(),
        wq.max_active()
    ))?;

    coalescing(&mut log, &wq)?;
    requeue_while_running(&mut log, &wq)?;
    non_reentrancy(&mut log, &rt, &wq, args.requeues)?;
    flush_and_cancel(&mut log, &wq)?;
    blocking(&mut log)?;
    writeln!(log.out, "\nall checks passed")?;
    Ok(ExitCode::SUCCESS)
}

/// Holds the pool's workers until released.
fn gate(wq: &Workqueue, n: usize) -> mpsc::Sender<()> {
    let (tx, rx) = mpsc::channel::<()>();
    let rx = Arc::new(std::sync::Mutex::new(rx));
    let started = Arc::new(Barrier::new(n + 1));
    for _ in 0..n {
        let (rx, started) = (rx.clone(), started.clone());
        wq.queue_fn(move || {
            started.wait();
            let _ = rx.lock().map(|r| r.recv());
        });
    }
    started.wait();
    tx
}

fn coalescing(log: &mut Log, wq: &Workqueue) -> Result<()> {
    log.head("coalescing: queueing a pending item does nothing")?;
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    let w = Work::new("refresh", move || {
        r.fetch_add(1, SeqCst);
    });
    let release = gate(wq, 2);
    log.say("both workers are busy; queueing 'refresh' 1000 times")?;
    let accepted = (0..1000).filter(|_| wq.queue(&w)).count();
    log.say(format!(
        "queue() returned true {accepted} time(s), false {} times; pending = {}",
        1000 - accepted,
        w.is_pending()
    ))?;
    drop(release);
    w.flush();
    let n = runs.load(SeqCst);
    log.say(format!("workers released; 'refresh' ran {n} time(s)"))?;
    ensure!(accepted == 1 && n == 1, "coalescing broken");
    wq.flush();
    Ok(())
}

fn requeue_while_running(log: &mut Log, wq: &Workqueue) -> Result<()> {
    log.head("requeue while running: runs exactly once more, afterwards")?;
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (in_tx, in_rx) = mpsc::channel::<usize>();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    let w = Work::new("reload", move || {
        let n = c.fetch_add(1, SeqCst) + 1;
        let _ = in_tx.send(n);
        if n == 1 {
            let _ = go_rx.recv();
        }
    });
    wq.queue(&w);
    in_rx.recv()?;
    log.say("'reload' run #1 is executing; queueing it 3 more times")?;
    let accepted = (0..3).filter(|_| wq.queue(&w)).count();
    log.say(format!(
        "accepted {accepted} (one new pending instance; the others coalesced)"
    ))?;
    go_tx.send(())?;
    let second = in_rx.recv()?;
    w.flush();
    log.say(format!(
        "run #1 ended, then run #{second} started; total runs = {}",
        count.load(SeqCst)
    ))?;
    ensure!(
        accepted == 1 && count.load(SeqCst) == 2,
        "requeue semantics broken"
    );
    Ok(())
}

fn non_reentrancy(log: &mut Log, rt: &Runtime, wq: &Workqueue, total: usize) -> Result<()> {
    log.head("non-reentrancy: one item, two workqueues, four queueing threads")?;
    let unbound = Workqueue::builder("demo-unbound")
        .unbound()
        .runtime(rt)
        .build()?;
    let inside = Arc::new(AtomicUsize::new(0));
    let max_seen = Arc::new(AtomicUsize::new(0));
    let runs = Arc::new(AtomicUsize::new(0));
    let (i, m, r) = (inside.clone(), max_seen.clone(), runs.clone());
    let w = Work::new("tick", move || {
        let now = i.fetch_add(1, SeqCst) + 1;
        m.fetch_max(now, SeqCst);
        r.fetch_add(1, SeqCst);
        std::hint::black_box((0..50).sum::<u64>());
        i.fetch_sub(1, SeqCst);
    });
    let queued = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for t in 0..4 {
            let (w, q) = (w.clone(), &queued);
            let target = if t % 2 == 0 { wq } else { &unbound };
            s.spawn(move || {
                for _ in 0..total / 4 {
                    if target.queue(&w) {
                        q.fetch_add(1, SeqCst);
                    }
                    // Let the workers in: on a small machine the queueing
                    // threads would otherwise finish before any run starts.
                    std::thread::yield_now();
                }
            });
        }
    });
    wq.flush();
    unbound.flush();
    w.flush();
    let (q, n, m) = (
        queued.load(SeqCst),
        runs.load(SeqCst),
        max_seen.load(SeqCst),
    );
    log.say(format!(
        "{total} queue() calls: {q} accepted, {n} runs, at most {m} run(s) at once"
    ))?;
    ensure!(n > 1, "the item should have run many times");
    ensure!(m == 1, "item ran concurrently with itself");
    ensure!(q == n, "accepted instances and runs differ");
    Ok(())
}

fn flush_and_cancel(log: &mut Log, wq: &Workqueue) -> Result<()> {
    log.head("flush and cancel")?;
    let w = Work::new("slow", || std::thread::sleep(Duration::from_millis(30)));
    wq.queue(&w);
    let t = Instant::now();
    let waited = w.flush();
    log.say(format!(
        "Work::flush() on a running 30 ms item waited {:.1} ms (returned {waited})",
        t.elapsed().as_secs_f64() * 1e3
    ))?;
    ensure!(waited && !w.is_running(), "flush did not wait");
    ensure!(!w.flush(), "flush of an idle item must return false");
    log.say("Work::flush() on the now idle item returned false at once")?;

    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    let d = DelayedWork::new("timeout", move || {
        r.fetch_add(1, SeqCst);
    });
    wq.queue_delayed(&d, Duration::from_millis(50));
    let was = d.cancel_sync();
    std::thread::sleep(Duration::from_millis(80));
    log.say(format!(
        "delayed 'timeout' (50 ms) cancelled: cancel_sync() = {was}, runs after 80 ms = {}",
        ran.load(SeqCst)
    ))?;
    ensure!(was && ran.load(SeqCst) == 0, "cancel broken");

    let (tx, rx) = mpsc::channel::<()>();
    let w2 = Work::new("busy", move || {
        let _ = tx.send(());
        std::thread::sleep(Duration::from_millis(20));
    });
    wq.queue(&w2);
    rx.recv()?;
    let was = w2.cancel_sync();
    log.say(format!(
        "cancel_sync() on a running item returned {was} after it finished; running = {}",
        w2.is_running()
    ))?;
    ensure!(
        !was && !w2.is_running(),
        "cancel_sync returned while running"
    );
    Ok(())
}

fn blocking(log: &mut Log) -> Result<()> {
    log.head("blocking: a worker that waits does not starve its pool")?;
    let rt = kwq::RuntimeBuilder::new()
        .concurrency(1)
        .thread_name("demo1")
        .build()?;
    let wq = Workqueue::builder("demo-one").runtime(&rt).build()?;
    let (tx, rx) = mpsc::channel::<&'static str>();
    let waiter_done = Arc::new(AtomicUsize::new(0));
    let d = waiter_done.clone();
    wq.queue_fn(move || {
        // Waits for an item queued *behind* it on a pool that keeps only one
        // worker running: without kwq::blocking this would never return.
        let got = kwq::blocking(|| rx.recv_timeout(Duration::from_secs(5)));
        if got.is_ok() {
            d.fetch_add(1, SeqCst);
        }
    });
    std::thread::sleep(Duration::from_millis(10));
    let dump = rt.dump();
    wq.queue_fn(move || {
        let _ = tx.send("hello");
    });
    wq.flush();
    log.say(format!(
        "concurrency-1 pool: item A waited inside kwq::blocking for item B queued after it: \
         completed = {}",
        waiter_done.load(SeqCst) == 1
    ))?;
    for line in dump.lines() {
        log.say(format!("  dump | {line}"))?;
    }
    ensure!(
        waiter_done.load(SeqCst) == 1,
        "blocking did not let the pool progress"
    );
    Ok(())
}
