//! agl-rust-ackfloor serves agl.v1.LightningStoreService/IngestSpans and nothing else: it decodes
//! each IngestSpansRequest whole (prost, UTF-8 checks included) and acks it with its batch id and
//! every span accepted, storing nothing. It is a floor for bench/store_bench.py (--ack-only
//! --go-client --floors): agl-loadgen's span-ack writers run against it unchanged, so their ack
//! latency here is what a compiled Rust front end would cost before any store work.
//!
//! Usage: agl-rust-ackfloor PORT_FILE (listens on 127.0.0.1, a free port, written to PORT_FILE).
//! TOKIO_WORKER_THREADS sets the runtime's threads.

use std::pin::Pin;

use tokio_stream::{wrappers::ReceiverStream, wrappers::TcpListenerStream, Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

pub mod pb {
    tonic::include_proto!("agl.v1");
}

use pb::lightning_store_service_server::{LightningStoreService, LightningStoreServiceServer};
use pb::{IngestSpansRequest, IngestSpansResponse};

// Acks a stream may have queued before the reader waits for the writer (HTTP/2 flow control then
// holds the client back), as agl-server's in-flight bound does.
const INFLIGHT: usize = 32;

struct AckOnly;

type AckStream = Pin<Box<dyn Stream<Item = Result<IngestSpansResponse, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl LightningStoreService for AckOnly {
    async fn ingest_spans(
        &self,
        request: Request<Streaming<IngestSpansRequest>>,
    ) -> Result<Response<AckStream>, Status> {
        let mut batches = request.into_inner();
        let (acks, out) = tokio::sync::mpsc::channel(INFLIGHT);
        tokio::spawn(async move {
            while let Some(batch) = batches.next().await {
                let ack = batch.map(|b| IngestSpansResponse {
                    batch_id: b.batch_id,
                    accepted: b.spans.len() as i32,
                    ..Default::default()
                });
                if acks.send(ack).await.is_err() {
                    break; // the client went away
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(out))))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port_file = std::env::args()
        .nth(1)
        .ok_or("usage: agl-rust-ackfloor PORT_FILE")?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    // Written whole and renamed, so a reader polling the file never sees half a number.
    std::fs::write(format!("{port_file}.tmp"), port.to_string())?;
    std::fs::rename(format!("{port_file}.tmp"), &port_file)?;
    // Without TCP_NODELAY each small ack waits for the peer's delayed ACK: p99 was 44 ms.
    let incoming = TcpListenerStream::new(listener).map(|socket| {
        socket.and_then(|s| {
            s.set_nodelay(true)?;
            Ok(s)
        })
    });
    tonic::transport::Server::builder()
        .add_service(LightningStoreServiceServer::new(AckOnly).max_decoding_message_size(64 << 20))
        .serve_with_incoming(incoming)
        .await?;
    Ok(())
}
