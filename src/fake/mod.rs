//! Local stand-ins for the outside world, following the contracts: used by the tests, the
//! benchmarks and `vaten demo`. They listen on 127.0.0.1 only.
pub mod grid_operator;
pub mod installations;
pub mod serve;
pub mod synth;

pub use grid_operator::{FakeGridOperator, Fault, FeedEntry, Retention};
pub use installations::{Behaviour, FakeInstallations};

use std::net::SocketAddr;

/// A local server on a thread of its own (its own small runtime), stopped and joined on drop.
pub struct LocalServer {
    pub addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LocalServer {
    /// Serves `app` on `127.0.0.1:port` (0: any free port).
    pub fn start(name: &str, port: u16, app: axum::Router) -> std::io::Result<Self> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", port))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("runtime for a local fake server");
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(async {
                            let _ = rx.await;
                        })
                        .await;
                });
            })?;
        Ok(LocalServer {
            addr,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
