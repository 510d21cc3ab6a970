//! The durable mode's store: every span of every batch put into one LMDB sub-database and committed
//! with a sync before the batch is acked, one writer thread committing whatever batches wait as one
//! group (as agl-server's writer does). It keeps none of agl's semantics: no rollout or attempt
//! lookup, no span-id de-duplication, no sequence ids, no heartbeats. So its latency is a floor
//! under any durable store behind a tonic front end, not what agl in Rust would cost.

use std::path::Path;
use std::sync::mpsc;
use std::thread;

use heed::types::Bytes;
use heed::{Database, Env, EnvFlags, EnvOpenOptions};
use tokio::sync::oneshot;

// Sparse on disk: only the pages written take space.
const MAP_SIZE: usize = 16 << 30;

struct Job {
    spans: Vec<Vec<u8>>,
    done: oneshot::Sender<Result<(), String>>,
}

/// A handle on the writer thread; cloned into every stream.
#[derive(Clone)]
pub struct Store {
    jobs: mpsc::Sender<Job>,
}

impl Store {
    /// Opens (creating) the environment in `dir` and starts the writer. With `sync`, LMDB's
    /// defaults: data and meta page synced on every commit, as agl-server's durable default does.
    /// Without, no sync at all (agl-server's AGL_DURABILITY=nosync): what is left is CPU.
    pub fn open(dir: &Path, sync: bool) -> Result<Store, Box<dyn std::error::Error>> {
        std::fs::create_dir_all(dir)?;
        let mut options = EnvOpenOptions::new();
        options.map_size(MAP_SIZE).max_dbs(1);
        if !sync {
            // SAFETY: NO_SYNC only gives up durability across a crash of the machine, by choice.
            unsafe { options.flags(EnvFlags::NO_SYNC) };
        }
        // SAFETY: heed requires that no other handle of this process opens the same directory;
        // this process opens it once, here.
        let env = unsafe { options.open(dir)? };
        let mut txn = env.write_txn()?;
        let db: Database<Bytes, Bytes> = env.create_database(&mut txn, Some("spans"))?;
        txn.commit()?;
        let (jobs, queue) = mpsc::channel();
        thread::Builder::new()
            .name("lmdb-writer".into())
            .spawn(move || write_groups(env, db, queue))?;
        Ok(Store { jobs })
    }

    /// Stores `spans` durably; returns once their group is committed.
    pub async fn write(&self, spans: Vec<Vec<u8>>) -> Result<(), String> {
        let (done, committed) = oneshot::channel();
        self.jobs
            .send(Job { spans, done })
            .map_err(|_| "the writer thread has stopped".to_string())?;
        committed
            .await
            .map_err(|_| "the writer thread has stopped".to_string())?
    }
}

fn write_groups(env: Env, db: Database<Bytes, Bytes>, queue: mpsc::Receiver<Job>) {
    // Keys in insertion order, so every put appends to the B-tree's last page.
    let mut next: u64 = 0;
    while let Ok(first) = queue.recv() {
        let mut group = vec![first];
        group.extend(queue.try_iter());
        let outcome = (|| -> heed::Result<()> {
            let mut txn = env.write_txn()?;
            for job in &group {
                for span in &job.spans {
                    next += 1;
                    db.put(&mut txn, &next.to_be_bytes(), span)?;
                }
            }
            txn.commit()
        })()
        .map_err(|err| format!("storing the batch failed: {err}"));
        for job in group {
            let _ = job.done.send(outcome.clone()); // a stream gone meanwhile needs no answer
        }
    }
}
