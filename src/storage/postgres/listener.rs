//! The NOTIFY listener: one thread holding its own connection with `LISTEN apikeyd_changes`,
//! nudging the writer thread at each notification so a change elsewhere is applied within
//! milliseconds. It only shortens the wait: notifications sent while it is disconnected are
//! lost, and the writer's poll (every `FLEET_POLL_INTERVAL`) with the gapless change log stays
//! the source of truth. A silent connection (black-holed) is found by a ping each second and
//! replaced.

use std::time::{Duration, Instant};

use tokio_postgres::AsyncMessage;

use super::{Target, CHANNEL};
use crate::config::{FLEET_CONNECT_TIMEOUT, FLEET_RECONNECT_PAUSE};
use crate::storage::writer::Waker;

/// Starts the listener thread; it ends when the writer is gone.
pub(crate) fn start(target: Target, waker: Waker) -> std::io::Result<()> {
    std::thread::Builder::new().name("apikeyd-listen".to_owned()).spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
            log::error!("fleet listener: no runtime; relying on polling alone");
            return;
        };
        loop {
            match rt.block_on(listen(&target, &waker)) {
                Stop::WriterGone => return,
                Stop::Lost(why) => log::debug!("fleet listener disconnected ({why}); polling covers the gap"),
            }
            // A change may have been missed while disconnected: have the writer poll now.
            if !waker.wake() {
                return;
            }
            std::thread::sleep(FLEET_RECONNECT_PAUSE);
        }
    })?;
    Ok(())
}

enum Stop {
    WriterGone,
    Lost(String),
}

async fn listen(target: &Target, waker: &Waker) -> Stop {
    let connected = tokio::time::timeout(FLEET_CONNECT_TIMEOUT, connect(target)).await;
    let (client, mut messages) = match connected {
        Ok(Ok(pair)) => pair,
        Ok(Err(e)) => return Stop::Lost(e.to_string()),
        Err(_) => return Stop::Lost("connecting timed out".into()),
    };
    if let Err(e) =
        tokio::time::timeout(FLEET_CONNECT_TIMEOUT, client.batch_execute(&format!("LISTEN {CHANNEL}"))).await
    {
        return Stop::Lost(e.to_string());
    }
    // Whatever was committed before LISTEN took effect is caught by this one poll.
    if !waker.wake() {
        return Stop::WriterGone;
    }
    let mut next_ping = Instant::now() + Duration::from_secs(1);
    loop {
        tokio::select! {
            message = messages.recv() => match message {
                Some(()) => {
                    if !waker.wake() {
                        return Stop::WriterGone;
                    }
                }
                None => return Stop::Lost("connection closed".into()),
            },
            () = tokio::time::sleep_until(next_ping.into()) => {
                match tokio::time::timeout(FLEET_CONNECT_TIMEOUT, client.simple_query("SELECT 1")).await {
                    Ok(Ok(_)) => next_ping = Instant::now() + Duration::from_secs(1),
                    Ok(Err(e)) => return Stop::Lost(e.to_string()),
                    Err(_) => return Stop::Lost("ping timed out".into()),
                }
            }
        }
    }
}

/// Connects and drives the connection on a task that forwards each notification as `()`.
async fn connect(
    target: &Target,
) -> Result<(tokio_postgres::Client, tokio::sync::mpsc::UnboundedReceiver<()>), tokio_postgres::Error> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let client = match &target.tls {
        None => {
            let (client, conn) = target.config.connect(tokio_postgres::NoTls).await?;
            tokio::spawn(forward(conn, tx));
            client
        }
        Some(tls) => {
            let (client, conn) = target.config.connect(tls.clone()).await?;
            tokio::spawn(forward(conn, tx));
            client
        }
    };
    Ok((client, rx))
}

async fn forward<S, T>(mut conn: tokio_postgres::Connection<S, T>, tx: tokio::sync::mpsc::UnboundedSender<()>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    while let Some(message) = std::future::poll_fn(|cx| conn.poll_message(cx)).await {
        match message {
            Ok(AsyncMessage::Notification(_)) => {
                if tx.send(()).is_err() {
                    return;
                }
            }
            Ok(_) => {}
            Err(_) => return,
        }
    }
}
