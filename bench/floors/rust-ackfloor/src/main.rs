//! agl-rust-ackfloor serves agl.v1.LightningStoreService/IngestSpans and nothing else: it decodes
//! each IngestSpansRequest whole (prost, UTF-8 checks included) and acks it with its batch id and
//! every span accepted, storing nothing. It is a floor for bench/store_bench.py (--ack-only
//! --go-client --floors): agl-loadgen's span-ack writers run against it unchanged, so their ack
//! latency here is what a compiled Rust front end would cost before any store work.
//!
//! With `--lmdb DIR` it also stores every span durably in an LMDB environment under DIR before
//! acking its batch (src/durable.rs): the floor of a durable store behind the same front end.
//! `--lmdb-nosync DIR` stores them without syncing. With `--forward SOCKET` it hands each batch to
//! agl's own store in another process and acks with its answer (src/forward.rs): a compiled edge in
//! front of agl's Python store.
//!
//! Usage: agl-rust-ackfloor PORT_FILE [--lmdb DIR | --lmdb-nosync DIR | --forward SOCKET] (listens
//! on 127.0.0.1, a free port, written to PORT_FILE; with --forward, once the store has connected).
//! TOKIO_WORKER_THREADS sets the runtime's threads.

mod durable;
mod forward;

use std::pin::Pin;

use prost::Message;

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

#[derive(Clone)]
enum Store {
    None,
    Lmdb(durable::Store),
    Forward(forward::Link),
}

struct AckOnly {
    store: Store,
}

type AckStream = Pin<Box<dyn Stream<Item = Result<IngestSpansResponse, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl LightningStoreService for AckOnly {
    async fn ingest_spans(
        &self,
        request: Request<Streaming<IngestSpansRequest>>,
    ) -> Result<Response<AckStream>, Status> {
        let mut batches = request.into_inner();
        let (acks, out) = tokio::sync::mpsc::channel(INFLIGHT);
        let store = self.store.clone();
        tokio::spawn(async move {
            while let Some(batch) = batches.next().await {
                let ack = match (batch, &store) {
                    (Err(status), _) => Err(status),
                    (Ok(b), Store::None) => Ok(ack_of(&b)),
                    // One batch of a stream stored at a time: the bench's writers are closed-loop,
                    // each waiting for its ack before sending the next batch, so nothing is lost.
                    (Ok(b), Store::Lmdb(store)) => {
                        let spans = b.spans.iter().map(|span| span.encode_to_vec()).collect();
                        match store.write(spans).await {
                            Ok(()) => Ok(ack_of(&b)),
                            Err(message) => Err(Status::unavailable(message)),
                        }
                    }
                    // Re-encoded from the decoded batch: the same bytes for every field agl knows.
                    (Ok(b), Store::Forward(link)) => match link.store(&b.encode_to_vec()).await {
                        Ok(answer) => IngestSpansResponse::decode(answer.as_slice())
                            .map(|mut response| {
                                response.batch_id = b.batch_id;
                                response
                            })
                            .map_err(|err| Status::internal(format!("the store's answer: {err}"))),
                        Err(message) => Err(Status::unavailable(message)),
                    },
                };
                if acks.send(ack).await.is_err() {
                    break; // the client went away
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(out))))
    }
}

fn ack_of(batch: &IngestSpansRequest) -> IngestSpansResponse {
    IngestSpansResponse {
        batch_id: batch.batch_id,
        accepted: batch.spans.len() as i32,
        ..Default::default()
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    const USAGE: &str =
        "usage: agl-rust-ackfloor PORT_FILE [--lmdb DIR | --lmdb-nosync DIR | --forward SOCKET]";
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (port_file, store) = match args.as_slice() {
        [port_file] => (port_file.clone(), Store::None),
        [port_file, flag, dir] if flag == "--lmdb" || flag == "--lmdb-nosync" => {
            let sync = flag == "--lmdb";
            let store = durable::Store::open(std::path::Path::new(dir), sync)?;
            (port_file.clone(), Store::Lmdb(store))
        }
        [port_file, flag, socket] if flag == "--forward" => (
            port_file.clone(),
            Store::Forward(forward::Link::accept(socket).await?),
        ),
        _ => return Err(USAGE.into()),
    };
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
        .add_service(
            LightningStoreServiceServer::new(AckOnly { store }).max_decoding_message_size(64 << 20),
        )
        .serve_with_incoming(incoming)
        .await?;
    Ok(())
}
