//! Password checks on threads of their own, at a lower scheduling priority: a burst of logins
//! (or a password-guessing run) queues up here and cannot take the cores that serve the plant.
//! Argon2 costs tens of milliseconds of one core per check; on a two-core edge server twenty at
//! once would otherwise starve every other request.

use crate::auth::LoginAttempt;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

/// Checks waiting at most; past that a login is told to try again rather than queue forever.
const QUEUE: usize = 1_024;
/// How much lower than the serving threads the checking threads run (Linux `nice`).
const NICENESS: i32 = 10;

struct Job {
    attempt: LoginAttempt,
    password: String,
    reply: tokio::sync::oneshot::Sender<bool>,
}

/// The checking threads' queue.
#[derive(Debug)]
pub(crate) struct Hasher {
    jobs: SyncSender<Job>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job").finish_non_exhaustive()
    }
}

/// Lowers this thread's priority, where the system lets it (Linux: per thread).
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        let me = rustix::thread::gettid();
        // Best effort: a system that refuses leaves the thread at normal priority.
        let _ = rustix::process::setpriority_process(Some(me), NICENESS);
    }
}

fn work(jobs: Arc<Mutex<Receiver<Job>>>) {
    lower_priority();
    loop {
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else {
            return; // the server is gone
        };
        let ok = job.attempt.verify(&job.password);
        let _ = job.reply.send(ok);
    }
}

impl Hasher {
    /// Starts `threads` checking threads (at least one).
    pub(crate) fn start(threads: usize) -> Hasher {
        let (jobs, rx) = sync_channel(QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        for n in 0..threads.max(1) {
            let rx = Arc::clone(&rx);
            // A thread that cannot be started leaves the others; with none, checks fail closed.
            let _ = std::thread::Builder::new()
                .name(format!("password-check-{n}"))
                .spawn(move || work(rx));
        }
        Hasher { jobs }
    }

    /// Checks a password on a checking thread; `None` when the queue is full or no thread runs.
    pub(crate) async fn verify(&self, attempt: LoginAttempt, password: String) -> Option<bool> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.jobs
            .try_send(Job {
                attempt,
                password,
                reply,
            })
            .ok()?;
        answer.await.ok()
    }
}
