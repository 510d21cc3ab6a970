//! The forwarding mode (`--forward SOCKET`): every batch that decodes goes, as a request's bytes,
//! over a Unix socket to agl's own store in a Python process (bench/rust_edge_floor.py), and the
//! store's answer is the ack. So the stream's gRPC work is compiled while agl's store (its writer,
//! group commits, placement, de-duplication, sequence ids) is the one agl-server runs.
//!
//! Frames both ways: a little-endian u32 payload length, a u64 request number, the payload. Answers
//! come in any order and are matched by number.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
use tokio::sync::{mpsc, oneshot};

const HEADER: usize = 12;

type Waiting = Arc<Mutex<HashMap<u64, oneshot::Sender<Vec<u8>>>>>;

/// The edge's end of the socket; cloned into every stream.
#[derive(Clone)]
pub struct Link {
    frames: mpsc::UnboundedSender<Vec<u8>>,
    waiting: Waiting,
    numbers: Arc<AtomicU64>,
}

impl Link {
    /// Listens on `path` and waits for the store process to connect.
    pub async fn accept(path: &str) -> io::Result<Link> {
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path)?;
        let (stream, _) = listener.accept().await?;
        let (read, mut write) = stream.into_split();
        let (frames, mut queue) = mpsc::unbounded_channel::<Vec<u8>>();
        tokio::spawn(async move {
            while let Some(mut buffer) = queue.recv().await {
                // The frames queued meanwhile go in the same write: one system call for several.
                while let Ok(more) = queue.try_recv() {
                    buffer.extend_from_slice(&more);
                }
                if write.write_all(&buffer).await.is_err() {
                    break;
                }
            }
        });
        let waiting: Waiting = Arc::default();
        let answered = waiting.clone();
        tokio::spawn(async move {
            let mut read = BufReader::with_capacity(1 << 16, read);
            let mut header = [0u8; HEADER];
            while read.read_exact(&mut header).await.is_ok() {
                let size = u32::from_le_bytes(header[..4].try_into().unwrap()) as usize;
                let number = u64::from_le_bytes(header[4..].try_into().unwrap());
                let mut payload = vec![0u8; size];
                if read.read_exact(&mut payload).await.is_err() {
                    break;
                }
                if let Some(done) = answered.lock().unwrap().remove(&number) {
                    let _ = done.send(payload); // a stream gone meanwhile needs no answer
                }
            }
            answered.lock().unwrap().clear(); // the store has gone: every waiting batch fails
        });
        Ok(Link {
            frames,
            waiting,
            numbers: Arc::default(),
        })
    }

    /// Hands `request` (a serialized IngestSpansRequest) to the store; its serialized answer.
    pub async fn store(&self, request: &[u8]) -> Result<Vec<u8>, String> {
        let gone = || "the store process has gone".to_string();
        let number = self.numbers.fetch_add(1, Ordering::Relaxed);
        let (done, answer) = oneshot::channel();
        self.waiting.lock().unwrap().insert(number, done);
        let mut frame = Vec::with_capacity(HEADER + request.len());
        frame.extend_from_slice(&(request.len() as u32).to_le_bytes());
        frame.extend_from_slice(&number.to_le_bytes());
        frame.extend_from_slice(request);
        self.frames.send(frame).map_err(|_| gone())?;
        answer.await.map_err(|_| gone())
    }
}
