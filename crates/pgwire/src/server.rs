//! The listener: one task per connection, stopped with the process.

use std::sync::Arc;
use std::time::Duration;

use hourglass_catalog::TokenCache;
use hourglass_query::Querier;
use pgwire::api::auth::StartupHandler;
use pgwire::api::cancel::{CancelHandler, DefaultCancelHandler};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::{ConnectionManager, PgWireServerHandlers};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinSet;

use crate::auth::TokenStartup;
use crate::handler::Backend;

/// How long open connections get to finish their statement when the server stops; idle
/// clients (a `psql` prompt) hold their connection forever, so they are closed after it.
const DRAIN: Duration = Duration::from_secs(5);

struct Handlers {
    backend: Arc<Backend>,
    startup: Arc<TokenStartup>,
    /// Answers CancelRequest messages (psql's Ctrl-C, `cursor.cancel()`): they arrive on a
    /// connection of their own and name the query's connection by pid and secret key.
    cancel: Arc<DefaultCancelHandler>,
}

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        Arc::clone(&self.backend)
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        Arc::clone(&self.backend)
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        Arc::clone(&self.startup)
    }

    fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        Arc::clone(&self.cancel)
    }
}

/// A running PostgreSQL wire protocol server.
pub struct PgServer {
    task: tokio::task::JoinHandle<()>,
    stop: Arc<Notify>,
}

impl PgServer {
    /// Serves `listener`: connections authenticate with a token from `tokens` and query
    /// through `querier`.
    pub fn spawn(listener: TcpListener, querier: Arc<Querier>, tokens: Arc<TokenCache>) -> Self {
        let connections = Arc::new(ConnectionManager::new());
        let handlers = Arc::new(Handlers {
            backend: Arc::new(Backend::new(querier)),
            startup: Arc::new(TokenStartup::new(tokens, Arc::clone(&connections))),
            cancel: Arc::new(DefaultCancelHandler::new(connections)),
        });
        let stop = Arc::new(Notify::new());
        let stopped = Arc::clone(&stop);
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    _ = stopped.notified() => break,
                    accepted = listener.accept() => match accepted {
                        Ok((socket, peer)) => {
                            let _ = socket.set_nodelay(true);
                            let handlers = Arc::clone(&handlers);
                            connections.spawn(async move {
                                if let Err(e) = pgwire::tokio::process_socket(socket, None, handlers).await {
                                    tracing::debug!(%peer, error = %e, "postgres wire connection ended with an error");
                                }
                            });
                        }
                        Err(e) => {
                            // Out of file descriptors and the like: wait rather than spin.
                            tracing::warn!(error = %e, "accepting a postgres wire connection failed");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    },
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
            drop(listener);
            let drained = tokio::time::timeout(DRAIN, async { while connections.join_next().await.is_some() {} }).await;
            if drained.is_err() {
                connections.abort_all();
            }
        });
        Self { task, stop }
    }

    /// Stops accepting, lets connections finish for a moment, then closes them.
    pub async fn stop(self) {
        self.stop.notify_one();
        if let Err(e) = self.task.await {
            tracing::warn!(error = %e, "the postgres wire server task failed");
        }
    }
}
