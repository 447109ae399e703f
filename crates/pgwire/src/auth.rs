//! Connection start: the client's password is a Hourglass token. A tenant's read token reads
//! that tenant's tables; the admin token reads `system.*`. The user name is only reported back.
//!
//! Passwords travel in cleartext (PostgreSQL's `password` method): the token has to reach the
//! server to be checked against its stored hash. Serve the port on a private network or behind
//! a TLS-terminating proxy.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::{Sink, SinkExt};
use hourglass_catalog::{Principal, TokenCache};
use hourglass_query::Scope;
use pgwire::api::auth::{
    DefaultServerParameterProvider, StartupHandler, finish_authentication, protocol_negotiation,
    save_startup_parameters_to_metadata,
};
use pgwire::api::{
    ClientInfo, ConnectionGuard, ConnectionHandle, ConnectionManager, METADATA_DATABASE, METADATA_USER,
    PgWireConnectionState, PidSecretKeyGenerator, RandomPidSecretKeyGenerator,
};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::startup::Authentication;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};

use crate::errors::{sqlstate, user_error};
use crate::pg_catalog::SERVER_VERSION;

/// What an authenticated connection may read, and its session settings. Kept in the
/// connection's extensions, where nothing the client sends can change it.
#[derive(Debug)]
pub(crate) struct Connection {
    /// The token's scope.
    pub scope: Scope,
    /// The user name the client gave.
    pub user: String,
    /// The database name the client gave.
    pub database: String,
    /// The process id the client was told (for `pg_backend_pid()`).
    pub pid: i32,
    /// Values of `SET` statements, for `SHOW`.
    pub settings: Mutex<BTreeMap<String, String>>,
    /// Where a CancelRequest for this connection arrives.
    pub cancel: Arc<ConnectionHandle>,
    /// Keeps the connection known to cancel requests until it closes.
    pub _registration: ConnectionGuard,
}

/// Authenticates connections with cleartext passwords that are Hourglass tokens.
pub(crate) struct TokenStartup {
    tokens: Arc<TokenCache>,
    parameters: DefaultServerParameterProvider,
    pids: RandomPidSecretKeyGenerator,
    connections: Arc<ConnectionManager>,
}

impl TokenStartup {
    /// Checks passwords against `tokens`; registers each connection in `connections` for
    /// cancel requests.
    pub fn new(tokens: Arc<TokenCache>, connections: Arc<ConnectionManager>) -> Self {
        let mut parameters = DefaultServerParameterProvider::default();
        parameters.server_version = SERVER_VERSION.to_string();
        parameters.is_superuser = false;
        parameters.default_transaction_read_only = true;
        parameters.time_zone = "UTC".to_string();
        Self { tokens, parameters, pids: RandomPidSecretKeyGenerator::default(), connections }
    }

    async fn scope(&self, user: &str, password: &str) -> PgWireResult<Scope> {
        let principal = self.tokens.resolve(password.trim()).await.map_err(|e| {
            user_error(
                sqlstate::UNAVAILABLE,
                format!("checking the token: {}", hourglass_types::error::display_chain(&e)),
            )
        })?;
        match principal {
            Some(Principal::Reader(tenant)) => Ok(Scope::Tenant(tenant)),
            Some(Principal::Admin) => Ok(Scope::Admin),
            Some(Principal::Writer(_)) => Err(user_error(
                sqlstate::INVALID_AUTHORIZATION,
                "a write key cannot read; use the tenant's read token as the password",
            )),
            None => Err(PgWireError::InvalidPassword(user.to_string())),
        }
    }
}

#[async_trait]
impl StartupHandler for TokenStartup {
    async fn on_startup<C>(&self, client: &mut C, message: PgWireFrontendMessage) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match message {
            PgWireFrontendMessage::Startup(ref startup) => {
                protocol_negotiation(client, startup).await?;
                save_startup_parameters_to_metadata(client, startup);
                client.set_state(PgWireConnectionState::AuthenticationInProgress);
                client.send(PgWireBackendMessage::Authentication(Authentication::CleartextPassword)).await?;
            }
            PgWireFrontendMessage::PasswordMessageFamily(message) => {
                let password = message.into_password()?;
                let user = client.metadata().get(METADATA_USER).cloned().unwrap_or_else(|| "hourglass".into());
                let scope = self.scope(&user, &password.password).await?;
                let (pid, secret) = self.pids.generate(client);
                let (cancel, registration) = self.connections.register(pid, secret.clone());
                client.set_pid_and_secret_key(pid, secret);
                let database = client.metadata().get(METADATA_DATABASE).cloned().unwrap_or_else(|| user.clone());
                tracing::debug!(user, database, "postgres wire connection authenticated");
                client.session_extensions().insert(Connection {
                    scope,
                    user,
                    database,
                    pid,
                    settings: Mutex::new(BTreeMap::new()),
                    cancel,
                    _registration: registration,
                });
                finish_authentication(client, &self.parameters).await?;
            }
            _ => {}
        }
        Ok(())
    }
}
