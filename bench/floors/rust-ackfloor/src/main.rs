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

use agl_floor_common::pb::lightning_store_service_server::LightningStoreService;
use agl_floor_common::pb::{IngestSpansRequest, IngestSpansResponse};
use agl_floor_common::{ack_each, answer_of, nodelay, service, AckStream};
use prost::Message;
use tonic::{Request, Response, Status, Streaming};

#[derive(Clone)]
enum Store {
    None,
    Lmdb(durable::Store),
    Forward(forward::Link),
}

impl Store {
    /// The ack of `batch`, once stored (if this floor stores).
    async fn answer(&self, batch: IngestSpansRequest) -> Result<IngestSpansResponse, Status> {
        match self {
            Store::None => Ok(ack_of(&batch)),
            Store::Lmdb(store) => {
                let spans = batch
                    .spans
                    .iter()
                    .map(|span| span.encode_to_vec())
                    .collect();
                match store.write(spans).await {
                    Ok(()) => Ok(ack_of(&batch)),
                    Err(message) => Err(Status::unavailable(message)),
                }
            }
            // Re-encoded from the decoded batch: the same bytes for every field agl knows.
            Store::Forward(link) => match link.store(&batch.encode_to_vec()).await {
                Ok(answer) => answer_of(&batch, &answer),
                Err(message) => Err(Status::unavailable(message)),
            },
        }
    }
}

struct AckOnly {
    store: Store,
}

#[tonic::async_trait]
impl LightningStoreService for AckOnly {
    async fn ingest_spans(
        &self,
        request: Request<Streaming<IngestSpansRequest>>,
    ) -> Result<Response<AckStream>, Status> {
        let store = self.store.clone();
        let acks = ack_each(request.into_inner(), move |batch| {
            let store = store.clone();
            async move { store.answer(batch).await }
        });
        Ok(Response::new(acks))
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
    tonic::transport::Server::builder()
        .add_service(service(AckOnly { store }))
        .serve_with_incoming(nodelay(listener))
        .await?;
    Ok(())
}
