//! A live events client (`GET /api/v1/ws`) for the end-to-end tests: connects with a bearer
//! header, records every JSON message the server sends (a task reads all the time, so pings
//! are answered), and can send messages.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::Server;

type Sink = SplitSink<WebSocketStream<MaybeTlsStream<TcpStream>>, Message>;

/// A connected client; the reader task stops on drop.
pub(crate) struct LiveEvents {
    got: Arc<Mutex<Vec<Value>>>,
    closed: Arc<Mutex<Option<Option<u16>>>>,
    sink: tokio::sync::Mutex<Sink>,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for LiveEvents {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl LiveEvents {
    /// Connects to `server` with `token` in the `Authorization` header and waits for
    /// `hello`.
    pub(crate) async fn connect(server: &Server, token: &str) -> LiveEvents {
        let url = server.url("/api/v1/ws").replacen("http://", "ws://", 1);
        let mut req = url.clone().into_client_request().expect("ws request");
        req.headers_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("header"),
        );
        let (ws, _) = tokio_tungstenite::connect_async(req)
            .await
            .unwrap_or_else(|e| panic!("connect {url}: {e}"));
        let (sink, mut stream) = ws.split();
        let got = Arc::new(Mutex::new(Vec::new()));
        let closed = Arc::new(Mutex::new(None));
        let (g, c) = (got.clone(), closed.clone());
        let reader = tokio::spawn(async move {
            while let Some(m) = stream.next().await {
                match m {
                    Ok(Message::Text(t)) => {
                        if let Ok(v) = serde_json::from_str::<Value>(t.as_str()) {
                            g.lock().unwrap().push(v);
                        }
                    }
                    Ok(Message::Close(f)) => {
                        *c.lock().unwrap() = Some(f.map(|f| u16::from(f.code)));
                        return;
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
            *c.lock().unwrap() = Some(None);
        });
        let live = LiveEvents {
            got,
            closed,
            sink: tokio::sync::Mutex::new(sink),
            reader,
        };
        live.wait_for("hello", Duration::from_secs(10)).await;
        live
    }

    /// Sends a JSON message.
    pub(crate) async fn send(&self, v: Value) {
        self.sink
            .lock()
            .await
            .send(Message::text(v.to_string()))
            .await
            .expect("ws send");
    }

    /// Every message so far.
    pub(crate) fn messages(&self) -> Vec<Value> {
        self.got.lock().unwrap().clone()
    }

    /// The messages of type `kind` so far.
    pub(crate) fn of_type(&self, kind: &str) -> Vec<Value> {
        self.messages()
            .into_iter()
            .filter(|m| m["type"] == kind)
            .collect()
    }

    /// The close code, once the server closed (`Some(None)`: closed without a frame).
    pub(crate) fn closed(&self) -> Option<Option<u16>> {
        *self.closed.lock().unwrap()
    }

    /// Waits for the first message of type `kind`; panics after `timeout`.
    pub(crate) async fn wait_for(&self, kind: &str, timeout: Duration) -> Value {
        super::eventually(&format!("a {kind} message"), timeout, || async {
            self.of_type(kind).into_iter().next()
        })
        .await
    }
}
