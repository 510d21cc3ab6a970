//! What the compiled floors share: agl's store service generated from the repository's protos
//! (every method but IngestSpans answers UNIMPLEMENTED), a listener's sockets with TCP_NODELAY,
//! and the span stream's acks, one per batch in order, each once its store has answered.

use std::future::Future;
use std::pin::Pin;

use prost::Message;
use tokio::net::{TcpListener, TcpStream};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tokio_stream::{Stream, StreamExt};
use tonic::{Status, Streaming};

pub mod pb {
    tonic::include_proto!("agl.v1");
}

use pb::lightning_store_service_server::{LightningStoreService, LightningStoreServiceServer};
use pb::{IngestSpansRequest, IngestSpansResponse};

// Acks a stream may have queued before its reader waits (HTTP/2 flow control then holds the client
// back), as agl-server's in-flight bound does.
const INFLIGHT: usize = 32;

pub type AckStream =
    Pin<Box<dyn Stream<Item = Result<IngestSpansResponse, Status>> + Send + 'static>>;

/// The acks of `batches`: each batch goes to `store` and its answer is the ack. One batch of a
/// stream at a time: the bench's writers are closed-loop, each waiting for its ack before sending
/// the next batch, so nothing is lost by it.
pub fn ack_each<S, F>(mut batches: Streaming<IngestSpansRequest>, store: S) -> AckStream
where
    S: Fn(IngestSpansRequest) -> F + Send + 'static,
    F: Future<Output = Result<IngestSpansResponse, Status>> + Send,
{
    let (acks, out) = tokio::sync::mpsc::channel(INFLIGHT);
    tokio::spawn(async move {
        while let Some(batch) = batches.next().await {
            let ack = match batch {
                Err(status) => Err(status),
                Ok(batch) => store(batch).await,
            };
            if acks.send(ack).await.is_err() {
                break; // the client went away
            }
        }
    });
    Box::pin(ReceiverStream::new(out))
}

/// agl's answer to a batch (a serialized IngestSpansResponse, from agl's store in Python), as the
/// ack of `batch`: with its batch id.
pub fn answer_of(batch: &IngestSpansRequest, answer: &[u8]) -> Result<IngestSpansResponse, Status> {
    let mut response = IngestSpansResponse::decode(answer)
        .map_err(|err| Status::internal(format!("the store's answer: {err}")))?;
    response.batch_id = batch.batch_id;
    Ok(response)
}

/// The service with agl-server's largest message (64 MiB).
pub fn service<T: LightningStoreService>(handler: T) -> LightningStoreServiceServer<T> {
    LightningStoreServiceServer::new(handler).max_decoding_message_size(64 << 20)
}

/// The listener's sockets, each with TCP_NODELAY: without it each small ack waits for the peer's
/// delayed ACK (p99 was 44 ms).
pub fn nodelay(listener: TcpListener) -> impl Stream<Item = std::io::Result<TcpStream>> {
    TcpListenerStream::new(listener).map(|socket| {
        socket.and_then(|s| {
            s.set_nodelay(true)?;
            Ok(s)
        })
    })
}
