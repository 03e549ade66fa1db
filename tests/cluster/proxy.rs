//! A fault-injecting TCP proxy in front of each node's raft port, for the partition test.
//!
//! Each node advertises its proxy as its raft address, so every raft RPC and forwarded
//! proposal *to* node N passes N's proxy. Requests *from* node N go to the other nodes'
//! proxies; the proxy tells them apart by the `x-camstream-node` header every node-to-node
//! request carries (signed; the first request of a connection names the sender, and a
//! keep-alive connection belongs to one client process). Cutting node N closes every
//! connection to or from N and refuses new ones, so neither its reqwest pool nor the peers'
//! can reach around the cut; healing lets new connections through.

use std::collections::BTreeSet;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// The set of cut-off nodes, shared by every proxy.
pub(crate) type Cut = watch::Sender<BTreeSet<u64>>;

/// The proxy of one node: listens on `port`, forwards to the node's raft port.
pub(crate) struct Proxy {
    pub(crate) port: u16,
    tasks: JoinSet<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.tasks.abort_all();
    }
}

impl Proxy {
    /// Starts the proxy of node `node`, forwarding to `127.0.0.1:target`.
    pub(crate) async fn start(node: u64, target: u16, cut: &Cut) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().unwrap().port();
        let rx = cut.subscribe();
        let mut tasks = JoinSet::new();
        tasks.spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                tokio::select! {
                    a = listener.accept() => {
                        let Ok((sock, _)) = a else { continue };
                        conns.spawn(forward(sock, node, target, rx.clone()));
                    }
                    Some(_) = conns.join_next(), if !conns.is_empty() => {}
                }
            }
        });
        Proxy { port, tasks }
    }
}

/// The value of header `name` in an HTTP request head.
fn header(head: &[u8], name: &str) -> Option<u64> {
    let text = std::str::from_utf8(head).ok()?;
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().parse().ok())?
    })
}

async fn forward(
    mut inbound: TcpStream,
    node: u64,
    target: u16,
    mut cut: watch::Receiver<BTreeSet<u64>>,
) {
    // The first request's head names the sender.
    let mut buf = Vec::with_capacity(8 << 10);
    let from = loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break header(&buf[..end], "x-camstream-node");
        }
        if buf.len() > 64 << 10 {
            return;
        }
        match inbound.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    };
    let blocked =
        move |set: &BTreeSet<u64>| set.contains(&node) || from.is_some_and(|f| set.contains(&f));
    if blocked(&cut.borrow_and_update()) {
        return;
    }
    let Ok(mut outbound) = TcpStream::connect(("127.0.0.1", target)).await else {
        return;
    };
    if outbound.write_all(&buf).await.is_err() {
        return;
    }
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
        () = async {
            while cut.changed().await.is_ok() {
                if blocked(&cut.borrow_and_update()) {
                    return;
                }
            }
            std::future::pending::<()>().await;
        } => {}
    }
}

#[cfg(test)]
mod tests {
    use super::header;

    #[test]
    fn the_sender_is_read_from_the_request_head() {
        let head =
            b"POST /raft/append HTTP/1.1\r\nhost: x\r\nX-Camstream-Node: 3\r\ncontent-length: 2";
        assert_eq!(header(head, "x-camstream-node"), Some(3));
        assert_eq!(
            header(b"GET / HTTP/1.1\r\nhost: x", "x-camstream-node"),
            None
        );
    }
}
