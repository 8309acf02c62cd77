//! Write overload: with the single writer stalled, creates past the queue's depth are shed
//! with 503 in the native envelope and change nothing; every create admitted to the queue
//! commits once the writer moves again.
//!
//! The writer is stalled the way a real deployment stalls it: another connection (here the
//! test's, in production the CLI) holds the database's write lock, and the writer waits for
//! it through busy_timeout. The lock is released on a signal, not after a pause: once every
//! create is either answered (shed with 503, which needs no writer) or held by the writer
//! (`Db::pending_writes`: queued, or in the group waiting for the lock), nothing more can
//! happen until the lock goes.

use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::test::TestRequest;
use apikeyd::config::{WRITE_GROUP_MAX, WRITE_QUEUE_DEPTH};
use apikeyd::storage::sqlite::open_connection;
use serde_json::json;

use crate::support::{assert_native_error, bearer, TestApp};

/// Enough creates that some must be shed however many the stalled writer took in.
const CREATES: usize = WRITE_QUEUE_DEPTH + WRITE_GROUP_MAX + 200;

/// How long the lock may be held waiting for every create to be answered or held: well
/// inside the writer's 5 s busy_timeout, past which held creates would fail.
const SAFETY_BOUND: Duration = Duration::from_secs(3);

#[actix_web::test]
async fn a_stalled_writer_sheds_creates_past_the_queue_with_503_and_commits_the_rest() {
    let app = Rc::new(TestApp::new().await);
    let count = |sql: &str| usize::try_from(app.count(sql)).unwrap();
    let keys_before = count("SELECT count(*) FROM api_keys");
    let audit_before = count("SELECT count(*) FROM audit_log");

    // Take the write lock from another connection. The thread below releases it once
    // answered + held == CREATES, or, failing that, at the safety bound (and the test fails).
    // It reads `answered` before `pending_writes`; a create leaves the writer's count before it
    // is counted answered, never the other way round, so the sum it sees is never more than
    // the true sum at its second read: seeing CREATES means every create had settled.
    let answered = Arc::new(AtomicUsize::new(0));
    let holder = {
        let answered = Arc::clone(&answered);
        let db = app.state.db.clone();
        let path = app.db_path();
        let (locked_tx, locked_rx) = std::sync::mpsc::channel();
        let handle = std::thread::spawn(move || {
            let conn = open_connection(&path).unwrap();
            conn.execute_batch("BEGIN IMMEDIATE").unwrap();
            locked_tx.send(()).unwrap();
            let deadline = Instant::now() + SAFETY_BOUND;
            let settled = loop {
                let done = answered.load(Ordering::SeqCst);
                let held = db.pending_writes();
                if done + held == CREATES {
                    break Ok((done, held));
                }
                if Instant::now() >= deadline {
                    break Err((done, held));
                }
                std::thread::sleep(Duration::from_millis(1));
            };
            conn.execute_batch("ROLLBACK").unwrap();
            settled
        });
        locked_rx.recv().unwrap();
        handle
    };

    let mut tasks = Vec::with_capacity(CREATES);
    for i in 0..CREATES {
        let (app, answered) = (Rc::clone(&app), Arc::clone(&answered));
        tasks.push(actix_web::rt::spawn(async move {
            let req = TestRequest::post()
                .uri("/api/v1/keys")
                .insert_header(bearer(&app.root))
                .set_json(json!({"title": format!("queued {i}")}));
            let reply = app.send(req).await;
            answered.fetch_add(1, Ordering::SeqCst);
            reply
        }));
    }
    let mut created = Vec::new();
    let mut shed = 0;
    for task in tasks {
        let reply = task.await.unwrap();
        match reply.status.as_u16() {
            200 => created.push(reply.body["data"]["api_key"].as_str().unwrap().to_owned()),
            503 => {
                assert_native_error(&reply, 503, "service_unavailable");
                assert!(!reply.raw.contains("sk-"), "a shed create echoes no key: {}", reply.raw);
                shed += 1;
            }
            other => panic!("create answered {other}: {}", reply.raw),
        }
    }
    let (answered_at_release, held_at_release) = holder.join().unwrap().unwrap_or_else(|(done, held)| {
        panic!(
            "after {SAFETY_BOUND:?} with the write lock held, {done} creates were answered and {held} held by \
             the writer: {} of {CREATES} had neither",
            CREATES - done - held
        )
    });

    println!(
        "overload: {CREATES} creates against a stalled writer: {} committed, {shed} shed with 503 \
         (at release: {answered_at_release} answered, {held_at_release} held)",
        created.len()
    );
    assert!(shed >= CREATES - WRITE_QUEUE_DEPTH - WRITE_GROUP_MAX, "the queue is bounded: only {shed} shed");
    assert!(created.len() > WRITE_QUEUE_DEPTH, "the whole queue was admitted: {} committed", created.len());
    // While the lock was held only shed creates could be answered, and every create the
    // writer held then committed.
    assert_eq!((shed, created.len()), (answered_at_release, held_at_release));
    // A shed create left nothing behind; an admitted one left its key and its audit row.
    assert_eq!(count("SELECT count(*) FROM api_keys"), keys_before + created.len());
    assert_eq!(count("SELECT count(*) FROM audit_log"), audit_before + created.len());
    for key in created.iter().step_by(97).chain(created.last()) {
        assert_eq!(app.verify_code(key).await, "VALID");
    }
}
