//! The single writer: one thread owns the one connection that writes, and commits queued
//! writes in groups. Each job runs in its own SAVEPOINT inside one transaction; a failing
//! job rolls back only its savepoint; one COMMIT (one WAL fsync) then acknowledges the
//! whole group. This is how durable creates reach thousands per second: the fsync cost is
//! shared, never skipped. No job's caller hears "ok" before the COMMIT has returned.
//!
//! Serialising writes in-process also means our own writers never meet SQLITE_BUSY; another
//! process (the CLI) is waited for through busy_timeout.
//!
//! How a group becomes durable is a [`Commit`]: SQLite's own COMMIT here ([`SqliteCommit`]),
//! or, in fleet mode, PostgreSQL's first (`postgres::replica`), which also uses the thread's
//! idle time to apply the fleet's changes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};

use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::config::{WRITE_GROUP_MAX, WRITE_QUEUE_DEPTH};
use crate::storage::StoreError;

/// A queued write, type-erased so one channel carries every kind.
pub(crate) trait Job: Send {
    /// Runs the work on the open transaction; returns the reply waiting for the commit.
    fn run(self: Box<Self>, conn: &Connection) -> Box<dyn Reply>;
    /// Answers without running, when the transaction could not even begin.
    fn fail(self: Box<Self>, err: StoreError);
    /// True when nobody waits for the answer any more (the caller gave up).
    fn abandoned(&self) -> bool;
}

/// A job's result, held until its group's COMMIT has returned.
pub(crate) trait Reply: Send {
    /// Whether the job's own work succeeded (its savepoint is kept).
    fn succeeded(&self) -> bool;
    /// Delivers the result, replaced by the commit's error if the commit failed.
    fn send(self: Box<Self>, commit: Result<(), StoreError>);
}

struct Pending<F, T, E> {
    work: F,
    reply: oneshot::Sender<Result<T, E>>,
}

struct Done<T, E> {
    result: Result<T, E>,
    reply: oneshot::Sender<Result<T, E>>,
}

impl<F, T, E> Job for Pending<F, T, E>
where
    F: FnOnce(&Connection) -> Result<T, E> + Send,
    T: Send + 'static,
    E: From<StoreError> + Send + 'static,
{
    fn run(self: Box<Self>, conn: &Connection) -> Box<dyn Reply> {
        let result = (self.work)(conn);
        Box::new(Done { result, reply: self.reply })
    }

    fn fail(self: Box<Self>, err: StoreError) {
        let _ = self.reply.send(Err(E::from(err)));
    }

    fn abandoned(&self) -> bool {
        self.reply.is_closed()
    }
}

impl<T: Send, E: From<StoreError> + Send> Reply for Done<T, E> {
    fn succeeded(&self) -> bool {
        self.result.is_ok()
    }

    fn send(self: Box<Self>, commit: Result<(), StoreError>) {
        let result = match commit {
            Ok(()) => self.result,
            // The job's work is not durable: whatever it computed must not be reported.
            Err(e) if self.result.is_ok() => Err(E::from(e)),
            Err(_) => self.result,
        };
        // The caller may have gone away (client disconnected); the write stands either way.
        let _ = self.reply.send(result);
    }
}

/// What the writer thread is sent: a job, or a nudge to do its idle work now.
pub(crate) enum Message {
    /// A write to run.
    Job(Box<dyn Job>),
    /// Something may have changed elsewhere (a PostgreSQL notification).
    Wake,
}

/// How a group of jobs is made durable, and what the thread does between groups.
pub(crate) trait Commit: Send + 'static {
    /// Runs `group`, commits it, and answers every job in it.
    fn commit_group(&mut self, conn: &Connection, group: Vec<Box<dyn Job>>);
    /// How long to wait for a job before [`Commit::idle`] runs; `None`: forever.
    fn idle_every(&self) -> Option<Duration> {
        None
    }
    /// Work for the thread's idle moments (and each [`Message::Wake`]).
    fn idle(&mut self, _conn: &Connection) {}
}

/// Handle to the writer thread. Cloning shares the thread.
#[derive(Clone)]
pub struct Writer {
    queue: SyncSender<Message>,
    /// Jobs accepted into the queue and not yet answered.
    pending: Arc<AtomicUsize>,
    /// How long each group's COMMIT took (shared with the writer thread).
    commits: Histogram,
}

/// A handle that nudges the writer thread to run its idle work now.
#[derive(Clone)]
pub(crate) struct Waker(SyncSender<Message>);

impl Waker {
    /// Nudges the thread; a full queue means it is busy anyway.
    pub(crate) fn wake(&self) -> bool {
        !matches!(self.0.try_send(Message::Wake), Err(TrySendError::Disconnected(_)))
    }
}

impl Writer {
    /// Starts the writer thread on `conn`.
    pub fn start(conn: Connection) -> Result<Writer, StoreError> {
        Writer::start_with(conn, SqliteCommit)
    }

    /// Starts the writer thread on `conn`, committing groups as `commit` does.
    pub(crate) fn start_with(conn: Connection, mut commit: impl Commit) -> Result<Writer, StoreError> {
        let (queue, jobs) = mpsc::sync_channel::<Message>(WRITE_QUEUE_DEPTH);
        // Commits take an fsync: 100 µs (a fast SSD's cache) to about 2.4 s.
        let commits = Histogram::new(exponential_buckets(0.0001, 2.5, 12));
        let timed = commits.clone();
        thread::Builder::new()
            .name("apikeyd-writer".to_owned())
            .spawn(move || run(&conn, &jobs, &mut commit, &timed))?;
        Ok(Writer { queue, pending: Arc::new(AtomicUsize::new(0)), commits })
    }

    /// The histogram of commit durations, in seconds (one observation per group).
    pub fn commit_latency(&self) -> Histogram {
        self.commits.clone()
    }

    /// A handle that nudges this writer's idle work.
    pub(crate) fn waker(&self) -> Waker {
        Waker(self.queue.clone())
    }

    /// Jobs accepted and not yet answered (queued, or in the group being committed).
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::SeqCst)
    }

    /// Queues `work` and waits for its group to commit. Past [`WRITE_QUEUE_DEPTH`] waiting
    /// jobs it is refused at once with [`StoreError::Overloaded`] (503).
    pub async fn submit<T, E, F>(&self, work: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        // Counted before the send, so a job is never answered before it was counted.
        self.pending.fetch_add(1, Ordering::SeqCst);
        let _answered = Answered(&self.pending);
        match self.queue.try_send(Message::Job(Box::new(Pending { work, reply }))) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(E::from(StoreError::Overloaded)),
            Err(TrySendError::Disconnected(_)) => return Err(E::from(StoreError::WorkerGone)),
        }
        answer.await.map_err(|_| E::from(StoreError::WorkerGone))?
    }
}

/// Uncounts a job from [`Writer::pending`] when its submitter stops waiting (answered,
/// refused, or the request dropped).
struct Answered<'a>(&'a AtomicUsize);

impl Drop for Answered<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn run(conn: &Connection, jobs: &Receiver<Message>, commit: &mut impl Commit, commits: &Histogram) {
    loop {
        let first = match commit.idle_every() {
            None => match jobs.recv() {
                Ok(m) => m,
                Err(_) => return,
            },
            Some(every) => match jobs.recv_timeout(every) {
                Ok(m) => m,
                Err(mpsc::RecvTimeoutError::Timeout) => Message::Wake,
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            },
        };
        let mut group = Vec::new();
        let mut woken = false;
        match first {
            Message::Job(job) => group.push(job),
            Message::Wake => woken = true,
        }
        while group.len() < WRITE_GROUP_MAX {
            match jobs.try_recv() {
                Ok(Message::Job(job)) => group.push(job),
                Ok(Message::Wake) => woken = true,
                Err(_) => break,
            }
        }
        if woken {
            commit.idle(conn);
        }
        if !group.is_empty() {
            let started = Instant::now();
            commit.commit_group(conn, group);
            commits.observe(started.elapsed().as_secs_f64());
        }
    }
}

/// The single-node [`Commit`]: one SQLite transaction per group.
pub(crate) struct SqliteCommit;

impl Commit for SqliteCommit {
    fn commit_group(&mut self, conn: &Connection, group: Vec<Box<dyn Job>>) {
        commit_group(conn, group);
    }
}

/// Runs each job of `group` in its own SAVEPOINT of the open transaction. Returns the replies
/// of the jobs that ran, and why the transaction is broken, if it is (the jobs after that
/// point were answered with the failure already).
pub(crate) fn run_jobs(conn: &Connection, group: Vec<Box<dyn Job>>) -> (Vec<Box<dyn Reply>>, Option<String>) {
    let mut replies = Vec::with_capacity(group.len());
    let mut broken: Option<String> = None;
    for job in group {
        if let Some(reason) = &broken {
            job.fail(StoreError::NotCommitted(reason.clone()));
            continue;
        }
        if let Err(e) = conn.execute_batch("SAVEPOINT job") {
            broken = Some(e.to_string());
            job.fail(StoreError::Sqlite(e));
            continue;
        }
        let reply = job.run(conn);
        let end = if reply.succeeded() { "RELEASE job" } else { "ROLLBACK TO job; RELEASE job" };
        if let Err(e) = conn.execute_batch(end) {
            broken = Some(e.to_string());
        }
        replies.push(reply);
    }
    (replies, broken)
}

/// Answers every reply: its own result if the commit succeeded, else the commit's failure.
pub(crate) fn deliver(replies: Vec<Box<dyn Reply>>, commit: &Result<(), StoreError>) {
    for reply in replies {
        reply.send(commit.as_ref().copied().map_err(StoreError::again));
    }
}

fn commit_group(conn: &Connection, group: Vec<Box<dyn Job>>) {
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        log::error!("write transaction could not begin: {e}");
        let shared = e.to_string();
        for job in group {
            job.fail(StoreError::NotCommitted(shared.clone()));
        }
        return;
    }
    let (replies, broken) = run_jobs(conn, group);
    // Negative control for the crash harness only: answer first, commit after, so a kill -9
    // in between loses acknowledged writes. Never in a shipped build (see Cargo.toml).
    #[cfg(feature = "unsafe-ack-before-commit")]
    let replies = {
        for reply in replies {
            reply.send(Ok(()));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        Vec::<Box<dyn Reply>>::new()
    };
    let commit = match broken {
        Some(reason) => Err(StoreError::NotCommitted(reason)),
        None => conn.execute_batch("COMMIT").map_err(StoreError::from),
    };
    let commit = match commit {
        Ok(()) => Ok(()),
        Err(e) => {
            log::error!("write transaction failed, nothing in it was kept: {e}");
            if !conn.is_autocommit() {
                if let Err(rb) = conn.execute_batch("ROLLBACK") {
                    log::error!("rollback failed: {rb}");
                }
            }
            Err(e)
        }
    };
    deliver(replies, &commit);
}
