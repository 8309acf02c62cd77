//! Write overload: with the single writer stalled, creates past the queue's depth are shed
//! with 503 in the native envelope and change nothing; every create admitted to the queue
//! commits once the writer moves again.
//!
//! The writer is stalled the way a real deployment stalls it: another connection (here the
//! test's, in production the CLI) holds the database's write lock, and the writer waits for
//! it through busy_timeout.

mod common;

use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::test::{self, TestRequest};
use apikeyd::config::{WRITE_GROUP_MAX, WRITE_QUEUE_DEPTH};
use apikeyd::db;
use common::{assert_native_error, bearer, send, TestEnv};
use serde_json::json;

/// Enough creates that some must be shed however many the stalled writer took in.
const CREATES: usize = WRITE_QUEUE_DEPTH + WRITE_GROUP_MAX + 200;

fn count(conn: &rusqlite::Connection, sql: &str) -> usize {
    conn.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap() as usize
}

#[actix_web::test]
async fn a_stalled_writer_sheds_creates_past_the_queue_with_503_and_commits_the_rest() {
    let env = TestEnv::new();
    let app = Rc::new(test::init_service(apikeyd::app(env.state.clone())).await);
    let check = db::open_connection(&env.db_path()).unwrap();
    let keys_before = count(&check, "SELECT count(*) FROM api_keys");
    let audit_before = count(&check, "SELECT count(*) FROM audit_log");

    // Take the write lock from another connection; it is released by the thread below once
    // every create that will be shed has been answered (they are answered without waiting),
    // and well inside the writer's 5 s busy_timeout.
    let answered = Arc::new(AtomicUsize::new(0));
    let holder = {
        let answered = answered.clone();
        let path = env.db_path();
        let (locked_tx, locked_rx) = std::sync::mpsc::channel();
        let handle = std::thread::spawn(move || {
            let conn = db::open_connection(&path).unwrap();
            conn.execute_batch("BEGIN IMMEDIATE").unwrap();
            locked_tx.send(()).unwrap();
            let start = Instant::now();
            let mut last = (0, Instant::now());
            while start.elapsed() < Duration::from_secs(3) {
                let now = answered.load(Ordering::SeqCst);
                if now != last.0 {
                    last = (now, Instant::now());
                } else if now >= CREATES - WRITE_QUEUE_DEPTH - WRITE_GROUP_MAX
                    && last.1.elapsed() > Duration::from_millis(300)
                {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            conn.execute_batch("ROLLBACK").unwrap();
        });
        locked_rx.recv().unwrap();
        handle
    };

    let mut tasks = Vec::with_capacity(CREATES);
    for i in 0..CREATES {
        let (app, answered, root) = (app.clone(), answered.clone(), env.root.clone());
        tasks.push(actix_web::rt::spawn(async move {
            let req = TestRequest::post()
                .uri("/api/v1/keys")
                .insert_header(bearer(&root))
                .set_json(json!({"title": format!("queued {i}")}));
            let reply = send(&*app, req).await;
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
    holder.join().unwrap();

    println!("overload: {CREATES} creates against a stalled writer: {} committed, {shed} shed with 503", created.len());
    assert!(shed >= CREATES - WRITE_QUEUE_DEPTH - WRITE_GROUP_MAX, "the queue is bounded: only {shed} shed");
    assert!(created.len() > WRITE_QUEUE_DEPTH, "the whole queue was admitted: {} committed", created.len());
    // A shed create left nothing behind; an admitted one left its key and its audit row.
    assert_eq!(count(&check, "SELECT count(*) FROM api_keys"), keys_before + created.len());
    assert_eq!(count(&check, "SELECT count(*) FROM audit_log"), audit_before + created.len());
    for key in created.iter().step_by(97).chain(created.last()) {
        let r = send(&*app, TestRequest::post().uri("/api/v1/keys/verify").set_json(json!({"key": key}))).await;
        assert_eq!(r.body["data"]["code"], "VALID", "{}", r.raw);
    }
}
