//! A scriptable HTTP/1.1 receiver on 127.0.0.1 for webhook tests (alert sinks): answers the n-th
//! request with a chosen status and records every request. Plain TCP or any stream (e.g. TLS) via
//! [`serve`].

use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One HTTP request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub head: String,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// A minimal HTTP/1.1 server on 127.0.0.1 that answers the n-th request with `statuses[n]` (the last
/// status repeats) and records every request.
pub struct Receiver {
    pub url: String,
    pub received: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    pub async fn start(statuses: Vec<u16>) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let received = serve(listener, statuses, |socket| async move { Some(socket) });
        Receiver { url, received }
    }

    pub fn requests(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

/// Accepts connections on `listener`, opens each with `open` (plain TCP as is, or a TLS handshake;
/// `None` drops the connection), records its one request and answers the n-th with `statuses[n]`
/// (the last repeats). Returns the record of requests.
pub fn serve<S, Open, Opening>(
    listener: TcpListener,
    statuses: Vec<u16>,
    open: Open,
) -> Arc<Mutex<Vec<Received>>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    Open: Fn(TcpStream) -> Opening + Send + 'static,
    Opening: Future<Output = Option<S>> + Send,
{
    let received = Arc::new(Mutex::new(Vec::new()));
    let log = received.clone();
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            let Some(mut stream) = open(socket).await else {
                continue;
            };
            let request = read_request(&mut stream).await;
            let status = {
                let mut log = log.lock().unwrap();
                log.push(request);
                *statuses
                    .get(log.len() - 1)
                    .or(statuses.last())
                    .unwrap_or(&200)
            };
            let response = format!(
                "HTTP/1.1 {status} X\r\ncontent-length: 6\r\nconnection: close\r\n\r\nstatus"
            );
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        }
    });
    received
}

async fn read_request(socket: &mut (impl AsyncRead + Unpin)) -> Received {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = socket.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            break buffer.len();
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let mut received = Received {
        head: String::from_utf8_lossy(&buffer[..head_end]).into_owned(),
        body: buffer[head_end..].to_vec(),
    };
    let length: usize = received
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while received.body.len() < length {
        let n = socket.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            break;
        }
        received.body.extend_from_slice(&chunk[..n]);
    }
    received
}
