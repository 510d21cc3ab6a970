//! `agl_native_edge`: IngestSpans served by tonic on its own threads inside a Python process, every
//! batch handed to that process's Python without an event loop in between.
//!
//! The bench's floor `agl-native-edge` (bench/native_edge_floor.py) runs it in a process holding
//! agl's `LmdbStore`: a Python thread takes the decoded batches ([`Edge::take`], blocking with the
//! GIL released), hands each to the store's writer, and the writer's delivery acks it
//! ([`Edge::ack`]). Decoding (prost, UTF-8 checks included), HTTP/2 and the streams' bookkeeping run
//! here, off the GIL; what is left to Python per batch is the store's own work.
//!
//! Every method but IngestSpans answers UNIMPLEMENTED (tonic's default stubs).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use agl_floor_common::pb::lightning_store_service_server::LightningStoreService;
use agl_floor_common::pb::{IngestSpansRequest, IngestSpansResponse};
use agl_floor_common::{ack_each, answer_of, nodelay, service, AckStream};
use prost::Message;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use tokio::sync::oneshot;
use tonic::{Code, Request, Response, Status, Streaming};

type Answer = Result<Vec<u8>, Status>;

/// What the tonic threads and Python share: batches waiting for Python, and the acks Python owes.
#[derive(Default)]
struct Shared {
    batches: Mutex<VecDeque<(u64, Vec<u8>)>>,
    arrived: Condvar,
    waiting: Mutex<HashMap<u64, oneshot::Sender<Answer>>>,
    tickets: AtomicU64,
    closed: AtomicBool,
}

impl Shared {
    /// Queues a batch's bytes for Python; its answer arrives on the receiver.
    fn hand_over(&self, request: Vec<u8>) -> oneshot::Receiver<Answer> {
        let ticket = self.tickets.fetch_add(1, Ordering::Relaxed);
        let (done, answer) = oneshot::channel();
        self.waiting.lock().unwrap().insert(ticket, done);
        self.batches.lock().unwrap().push_back((ticket, request));
        self.arrived.notify_one();
        answer
    }

    fn answer(&self, ticket: u64, answer: Answer) {
        if let Some(done) = self.waiting.lock().unwrap().remove(&ticket) {
            let _ = done.send(answer); // a stream gone meanwhile needs no answer
        }
    }
}

struct Service {
    shared: Arc<Shared>,
}

#[tonic::async_trait]
impl LightningStoreService for Service {
    async fn ingest_spans(
        &self,
        request: Request<Streaming<IngestSpansRequest>>,
    ) -> Result<Response<AckStream>, Status> {
        let shared = self.shared.clone();
        let acks = ack_each(request.into_inner(), move |batch| {
            let shared = shared.clone();
            async move { store(&shared, batch).await }
        });
        Ok(Response::new(acks))
    }
}

/// One batch through Python's store.
async fn store(shared: &Shared, batch: IngestSpansRequest) -> Result<IngestSpansResponse, Status> {
    if shared.closed.load(Ordering::Relaxed) {
        return Err(Status::unavailable("the server is stopping"));
    }
    // Re-encoded from the decoded batch: the same bytes for every field agl knows.
    let answer = shared.hand_over(batch.encode_to_vec());
    let bytes = answer
        .await
        .map_err(|_| Status::unavailable("the store stopped before answering"))??;
    answer_of(&batch, &bytes)
}

/// The edge: a tonic server on its own runtime, listening from construction on.
#[pyclass(module = "agl_native_edge")]
struct Edge {
    shared: Arc<Shared>,
    port: u16,
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
}

#[pymethods]
impl Edge {
    /// Starts serving on `host` (a free port; see `port`) with `threads` runtime threads.
    #[new]
    fn new(host: &str, threads: usize) -> PyResult<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("agl-native-edge")
            .enable_all()
            .build()
            .map_err(|err| PyRuntimeError::new_err(format!("starting the runtime: {err}")))?;
        let shared = Arc::new(Shared::default());
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind((host, 0)))
            .map_err(|err| PyRuntimeError::new_err(format!("listening on {host}: {err}")))?;
        let port = listener.local_addr()?.port();
        let service = service(Service {
            shared: shared.clone(),
        });
        runtime.spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(nodelay(listener)),
        );
        Ok(Edge {
            shared,
            port,
            runtime: Mutex::new(Some(runtime)),
        })
    }

    #[getter]
    fn port(&self) -> u16 {
        self.port
    }

    /// The batches that arrived, as (ticket, request bytes); waits up to `timeout` seconds for the
    /// first, with the GIL released. None once closed and drained.
    fn take<'py>(&self, py: Python<'py>, timeout: f64) -> Option<Vec<(u64, Bound<'py, PyBytes>)>> {
        let taken: Vec<(u64, Vec<u8>)> = py.allow_threads(|| {
            let mut batches = self.shared.batches.lock().unwrap();
            if batches.is_empty() && !self.shared.closed.load(Ordering::Relaxed) {
                let wait = Duration::from_secs_f64(timeout.max(0.0));
                batches = self.shared.arrived.wait_timeout(batches, wait).unwrap().0;
            }
            batches.drain(..).collect()
        });
        if taken.is_empty() && self.shared.closed.load(Ordering::Relaxed) {
            return None;
        }
        Some(
            taken
                .into_iter()
                .map(|(ticket, bytes)| (ticket, PyBytes::new(py, &bytes)))
                .collect(),
        )
    }

    /// Acks the batch of `ticket` with `response`, a serialized IngestSpansResponse (its batch id
    /// is set here). Any thread.
    fn ack(&self, ticket: u64, response: &[u8]) {
        self.shared.answer(ticket, Ok(response.to_vec()));
    }

    /// Ends the stream of `ticket`'s batch with gRPC status `code` and `message`.
    fn fail(&self, ticket: u64, code: i32, message: &str) {
        self.shared
            .answer(ticket, Err(Status::new(Code::from_i32(code), message)));
    }

    /// Stops serving: waiting takers return, open streams end.
    fn close(&self, py: Python<'_>) {
        self.shared.closed.store(true, Ordering::Relaxed);
        self.shared.arrived.notify_all();
        if let Some(runtime) = self.runtime.lock().unwrap().take() {
            py.allow_threads(|| runtime.shutdown_timeout(Duration::from_secs(5)));
        }
        self.shared.waiting.lock().unwrap().clear();
    }
}

#[pymodule]
fn agl_native_edge(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<Edge>()
}
