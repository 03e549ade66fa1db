//! The origin side: accepts edges' connections and serves each camera stream they open from
//! the camera's relay hub (its GOP cache, then its live messages).
//!
//! One task per connection and one per stream, in `JoinSet`s under the endpoint's task. A
//! slow edge never slows ingest: the hub is a bounded broadcast, and an edge that falls more
//! than its capacity behind gets `End{Lagged}`.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use camstream_protocol::relay::{self, Accept, End, EndReason, Message};
use quinn::{Connection, SendStream};
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};

use super::auth::Role;
use super::{CLOSE_UNAUTHORIZED, Context, HELLO_TIMEOUT, Reader, write};

/// Accepts connections until `shutdown`.
pub(super) async fn accept(
    endpoint: &quinn::Endpoint,
    ctx: Arc<Context>,
    shutdown: CancellationToken,
) {
    let mut conns = JoinSet::new();
    loop {
        let incoming = tokio::select! {
            i = endpoint.accept() => match i {
                Some(i) => i,
                None => break,
            },
            () = shutdown.cancelled() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        let peer = incoming.remote_address();
        let ctx = ctx.clone();
        let stop = shutdown.clone();
        conns.spawn(
            async move {
                match incoming.await {
                    Ok(conn) => serve_connection(conn, ctx, stop).await,
                    Err(e) => debug!(error = %e, "relay handshake failed"),
                }
            }
            .instrument(info_span!("relay_origin", %peer)),
        );
    }
    conns.abort_all();
    while conns.join_next().await.is_some() {}
}

async fn serve_connection(conn: Connection, ctx: Arc<Context>, shutdown: CancellationToken) {
    let mut streams = JoinSet::new();
    loop {
        let (send, recv) = tokio::select! {
            s = conn.accept_bi() => match s {
                Ok(s) => s,
                Err(e) => {
                    debug!(error = %e, "relay connection closed");
                    break;
                }
            },
            () = shutdown.cancelled() => break,
            Some(_) = streams.join_next(), if !streams.is_empty() => continue,
        };
        let conn = conn.clone();
        let ctx = ctx.clone();
        let stop = shutdown.clone();
        streams.spawn(
            async move { serve_stream(conn, send, Reader::new(recv), ctx, stop).await }
                .instrument(tracing::Span::current()),
        );
    }
    while streams.join_next().await.is_some() {}
}

/// How often a served stream asks the fence again: a node that lost its lease or the
/// camera's placement stops feeding edges within this (its lease view is 90 % of the
/// replicated lease, so this fits in the remaining 10 % of the default 2 s).
const FENCE_RECHECK: Duration = Duration::from_millis(200);

/// How a served stream ended, for the log.
#[derive(Debug)]
enum Served {
    Ended(EndReason),
    EdgeLeft,
    Failed(String),
}

async fn serve_stream(
    conn: Connection,
    mut send: SendStream,
    mut reader: Reader,
    ctx: Arc<Context>,
    shutdown: CancellationToken,
) {
    let peer = conn.remote_address();
    let hello = match tokio::time::timeout(HELLO_TIMEOUT, reader.next()).await {
        Ok(Ok(Some(Message::Hello(h)))) => h,
        Ok(Ok(other)) => {
            warn!(%peer, got = ?other.map(|m| std::mem::discriminant(&m)), "relay stream did not start with Hello");
            return;
        }
        Ok(Err(e)) => {
            warn!(%peer, error = %e, "relay stream refused");
            return;
        }
        Err(_) => {
            warn!(%peer, "relay stream refused: no Hello in time");
            return;
        }
    };
    let mut scratch = BytesMut::with_capacity(256);
    if hello.version != relay::VERSION {
        let text = format!("this node speaks relay version {}", relay::VERSION);
        warn!(%peer, version = hello.version, "relay peer refused: protocol version");
        end(&mut send, &mut scratch, EndReason::VersionMismatch, text).await;
        return;
    }
    if !ctx.secret.verify(&conn, Role::Edge, &hello.auth) {
        // The operator must act: a node is misconfigured, or someone is probing.
        warn!(%peer, camera_id = %hello.camera, "relay peer refused: wrong cluster secret");
        end(
            &mut send,
            &mut scratch,
            EndReason::Unauthorized,
            "wrong cluster secret".into(),
        )
        .await;
        conn.close(CLOSE_UNAUTHORIZED.into(), b"unauthorized");
        return;
    }
    let Some(proof) = ctx.secret.proof(&conn, Role::Origin) else {
        return;
    };
    let camera = hello.camera;
    let served = async {
        if write(&mut send, &Message::Accept(Accept { auth: proof }), &mut scratch)
            .await
            .is_err()
        {
            return Served::EdgeLeft;
        }
        // Only a camera ingested here is served: an edge never relays what it relays.
        let Some(stream) = ctx.registry.get(&camera).filter(|s| !s.is_relayed()) else {
            end(
                &mut send,
                &mut scratch,
                EndReason::UnknownCamera,
                "the camera is not ingested on this node".into(),
            )
            .await;
            return Served::Ended(EndReason::UnknownCamera);
        };
        if let Some(fence) = ctx.fence.get()
            && let Err(why) = fence.may_serve(&camera)
        {
            info!(reason = %why, "relay stream refused: fenced");
            end(&mut send, &mut scratch, EndReason::Fenced, why.to_string()).await;
            return Served::Ended(EndReason::Fenced);
        }
        info!("relay stream opened");
        let _open = super::gauge::OpenStream::open(super::gauge::Direction::Out);
        let feed = tokio::select! {
            f = stream.subscribe_relay() => match f {
                Ok(f) => f,
                Err(_) => return Served::Failed("the camera's stream went away".into()),
            },
            _ = reader.next() => return Served::EdgeLeft,
            () = shutdown.cancelled() => {
                end(&mut send, &mut scratch, EndReason::Shutdown, String::new()).await;
                return Served::Ended(EndReason::Shutdown);
            }
        };
        drop(stream);
        let mut live = feed.live;
        // Nothing goes out before an `Init`: the edge cannot place frames without one.
        let mut started = false;
        for msg in feed.gop {
            started |= matches!(msg, Message::Init(_));
            if started && write(&mut send, &msg, &mut scratch).await.is_err() {
                return Served::EdgeLeft;
            }
        }
        // Only a cluster node has a fence; a node without one never wakes for it.
        let fence = ctx.fence.get();
        let mut recheck = tokio::time::interval(FENCE_RECHECK);
        recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = recheck.tick(), if fence.is_some() => {
                    if let Some(Err(why)) = fence.map(|f| f.may_serve(&camera)) {
                        info!(reason = %why, "relay stream ended: fenced");
                        end(&mut send, &mut scratch, EndReason::Fenced, why.to_string()).await;
                        return Served::Ended(EndReason::Fenced);
                    }
                }
                m = live.recv() => match m {
                    Ok(msg) => {
                        started |= matches!(msg, Message::Init(_));
                        if !started {
                            continue;
                        }
                        let last = matches!(msg, Message::End(_));
                        if write(&mut send, &msg, &mut scratch).await.is_err() {
                            return Served::EdgeLeft;
                        }
                        if last {
                            let _ = send.finish();
                            return Served::Ended(EndReason::Finished);
                        }
                    }
                    Err(RecvError::Lagged(n)) => {
                        end(&mut send, &mut scratch, EndReason::Lagged, format!("{n} messages behind")).await;
                        return Served::Ended(EndReason::Lagged);
                    }
                    Err(RecvError::Closed) => {
                        end(&mut send, &mut scratch, EndReason::Finished, "the camera's stream was removed".into()).await;
                        return Served::Ended(EndReason::Finished);
                    }
                },
                r = reader.next() => {
                    // The edge ends its side (idle, shutdown) or goes away.
                    if let Ok(Some(Message::End(e))) = r {
                        return Served::Ended(e.reason);
                    }
                    return Served::EdgeLeft;
                }
                () = shutdown.cancelled() => {
                    end(&mut send, &mut scratch, EndReason::Shutdown, String::new()).await;
                    return Served::Ended(EndReason::Shutdown);
                }
            }
        }
    }
    .instrument(info_span!("relay_stream", camera_id = %camera))
    .await;
    match served {
        Served::Ended(reason) => info!(camera_id = %camera, ?reason, "relay stream ended"),
        Served::EdgeLeft => info!(camera_id = %camera, "relay stream ended: the edge left"),
        Served::Failed(why) => warn!(camera_id = %camera, why, "relay stream failed"),
    }
}

/// Sends `End` and finishes our side (best effort: the edge may be gone).
async fn end(send: &mut SendStream, scratch: &mut BytesMut, reason: EndReason, text: String) {
    let _ = write(send, &Message::End(End { reason, text }), scratch).await;
    let _ = send.finish();
}
