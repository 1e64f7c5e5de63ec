//! MySQL/MariaDB access: connecting with retries, migrations and the beer queries.
//!
//! Queries are built at run time (`sqlx::query_as`, not `query!`) so the crate builds without a
//! database or a DATABASE_URL.

use std::time::Duration;

use sqlx::MySqlPool;
use sqlx::migrate::Migrator;
use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions, MySqlSslMode};

use crate::model::{Beer, BeerInput, PageRequest};

/// The schema migrations under `migrations/`, embedded in the binary so the image needs no
/// files beside it.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Selects a page of beers. Queries are literals: sqlx 0.9 refuses strings built at run time
/// unless marked as audited, and these need nothing dynamic besides bound parameters.
const SELECT_PAGE: &str = "SELECT id, name, brewery, style, abv, ibu, description \
                           FROM beers ORDER BY id LIMIT ? OFFSET ?";
/// Selects one beer by id.
const SELECT_ONE: &str = "SELECT id, name, brewery, style, abv, ibu, description \
                          FROM beers WHERE id = ?";

/// Where and as whom to connect.
#[derive(Clone)]
pub struct DbSettings {
    /// Host name or address of the server, e.g. the Kubernetes Service name.
    pub host: String,
    /// TCP port of the server.
    pub port: u16,
    /// Database (schema) name.
    pub database: String,
    /// User name.
    pub user: String,
    /// Password; `Debug` and `redacted` leave it out so it never reaches a log.
    pub password: String,
}

impl std::fmt::Debug for DbSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl DbSettings {
    /// Connection options for sqlx.
    pub fn connect_options(&self) -> MySqlConnectOptions {
        MySqlConnectOptions::new()
            .host(&self.host)
            .port(self.port)
            .database(&self.database)
            .username(&self.user)
            .password(&self.password)
            // The crate is built without a TLS backend (the pod network is the cluster's own);
            // saying so avoids a TLS attempt that could only fail.
            .ssl_mode(MySqlSslMode::Disabled)
    }

    /// `user@host:port/database`, for logs: never the password.
    pub fn redacted(&self) -> String {
        format!(
            "{}@{}:{}/{}",
            self.user, self.host, self.port, self.database
        )
    }
}

/// Opens a pool, retrying until the server answers: in Kubernetes the database pod may well
/// start after the API pods, and crashing meanwhile would only earn a CrashLoopBackOff.
pub async fn connect_with_retry(
    options: MySqlConnectOptions,
    target: &str,
    retry_every: Duration,
) -> MySqlPool {
    let mut attempt = 1u32;
    loop {
        let result = MySqlPoolOptions::new()
            .max_connections(5)
            // Short, so a stalled database shows up as a quick 500 or a failed probe rather than
            // requests piling up behind a long wait.
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options.clone())
            .await;
        match result {
            Ok(pool) => {
                tracing::info!(%target, attempt, "connected to the database");
                return pool;
            }
            Err(err) => {
                tracing::warn!(%target, attempt, error = %err, "database not reachable yet; retrying");
                tokio::time::sleep(retry_every).await;
                attempt += 1;
            }
        }
    }
}

/// Brings the schema up to date. sqlx holds a database lock while migrating, so several
/// replicas starting together apply each migration once.
pub async fn migrate(pool: &MySqlPool) -> Result<(), sqlx::migrate::MigrateError> {
    MIGRATOR.run(pool).await
}

/// Checks that the database answers a trivial query, for the readiness probe.
pub async fn ping(pool: &MySqlPool) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT 1").execute(pool).await.map(|_| ())
}

/// One page of beers ordered by id, and the total number of beers.
pub async fn list_beers(
    pool: &MySqlPool,
    request: PageRequest,
) -> Result<(Vec<Beer>, u64), sqlx::Error> {
    let rows = sqlx::query_as::<_, Beer>(SELECT_PAGE)
        .bind(request.size)
        .bind(request.offset())
        .fetch_all(pool)
        .await?;
    let (total,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM beers")
        .fetch_one(pool)
        .await?;
    // COUNT(*) is never negative.
    Ok((rows, u64::try_from(total).unwrap_or_default()))
}

/// The beer with this id, if any.
pub async fn get_beer(pool: &MySqlPool, id: u64) -> Result<Option<Beer>, sqlx::Error> {
    sqlx::query_as::<_, Beer>(SELECT_ONE)
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// Stores a new beer and returns it with its id.
pub async fn insert_beer(pool: &MySqlPool, input: BeerInput) -> Result<Beer, sqlx::Error> {
    let result = sqlx::query(
        "INSERT INTO beers (name, brewery, style, abv, ibu, description) \
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(&input.name)
    .bind(&input.brewery)
    .bind(&input.style)
    .bind(input.abv)
    .bind(input.ibu)
    .bind(&input.description)
    .execute(pool)
    .await?;
    Ok(with_id(result.last_insert_id(), input))
}

/// Replaces every field of a beer; `None` when no beer has this id.
pub async fn update_beer(
    pool: &MySqlPool,
    id: u64,
    input: BeerInput,
) -> Result<Option<Beer>, sqlx::Error> {
    // sqlx connects with CLIENT_FOUND_ROWS, so rows_affected counts matched rows and an update
    // that changes nothing still reports 1, not a false 404.
    let result = sqlx::query(
        "UPDATE beers SET name = ?, brewery = ?, style = ?, abv = ?, ibu = ?, description = ? \
         WHERE id = ?",
    )
    .bind(&input.name)
    .bind(&input.brewery)
    .bind(&input.style)
    .bind(input.abv)
    .bind(input.ibu)
    .bind(&input.description)
    .bind(id)
    .execute(pool)
    .await?;
    Ok((result.rows_affected() > 0).then(|| with_id(id, input)))
}

/// Deletes a beer; false when no beer had this id.
pub async fn delete_beer(pool: &MySqlPool, id: u64) -> Result<bool, sqlx::Error> {
    let result = sqlx::query("DELETE FROM beers WHERE id = ?")
        .bind(id)
        .execute(pool)
        .await?;
    Ok(result.rows_affected() > 0)
}

/// A stored beer from its id and validated fields.
fn with_id(id: u64, input: BeerInput) -> Beer {
    Beer {
        id,
        name: input.name,
        brewery: input.brewery,
        style: input.style,
        abv: input.abv,
        ibu: input.ibu,
        description: input.description,
    }
}
