//! Settings, from the command line or (as in Kubernetes) the environment.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use clap::Parser;

use crate::db::DbSettings;

/// The Terrax beer API: a REST service for beers, backed by MySQL/MariaDB.
///
/// Every option can also be set through the environment variable named in brackets.
// No `Debug`: it would print the password.
#[derive(Clone, Parser)]
#[command(name = "beer-api", version)]
pub struct Config {
    /// Database server host (in Kubernetes: the database Service's name).
    #[arg(long, env = "DB_HOST", default_value = "localhost")]
    pub db_host: String,
    /// Database server port.
    #[arg(long, env = "DB_PORT", default_value_t = 3306)]
    pub db_port: u16,
    /// Database name.
    #[arg(long, env = "DB_NAME", default_value = "beers")]
    pub db_name: String,
    /// Database user.
    #[arg(long, env = "DB_USER", default_value = "beer")]
    pub db_user: String,
    /// Database password (in Kubernetes: from a Secret). Its value is never printed.
    #[arg(long, env = "DB_PASSWORD", default_value = "", hide_env_values = true)]
    pub db_password: String,
    /// Seconds between attempts to reach the database at start-up.
    #[arg(long, env = "DB_RETRY_SECONDS", default_value_t = 2)]
    pub db_retry_seconds: u64,
    /// HTTP port to listen on.
    #[arg(long, env = "PORT", default_value_t = 8080)]
    pub port: u16,
    /// Address to listen on; all interfaces by default, as a pod must be reachable on its IP.
    #[arg(long, env = "BIND_ADDRESS", default_value_t = IpAddr::V4(Ipv4Addr::UNSPECIFIED))]
    pub bind: IpAddr,
}

impl Config {
    /// The database settings.
    pub fn db(&self) -> DbSettings {
        DbSettings {
            host: self.db_host.clone(),
            port: self.db_port,
            database: self.db_name.clone(),
            user: self.db_user.clone(),
            password: self.db_password.clone(),
        }
    }

    /// The address to listen on.
    pub fn listen_addr(&self) -> SocketAddr {
        SocketAddr::new(self.bind, self.port)
    }

    /// Pause between database connection attempts.
    pub fn retry_every(&self) -> Duration {
        Duration::from_secs(self.db_retry_seconds.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_listen_on_all_interfaces_at_8080() {
        // The environment overrides defaults, so only check where it sets neither.
        if std::env::var_os("PORT").is_some() || std::env::var_os("BIND_ADDRESS").is_some() {
            return;
        }
        let config = Config::try_parse_from(["beer-api"]).unwrap();
        assert_eq!(config.listen_addr().to_string(), "0.0.0.0:8080");
    }

    #[test]
    fn password_stays_out_of_debug_output() {
        let config =
            Config::try_parse_from(["beer-api", "--db-password", "s3cret", "--db-host", "db"])
                .unwrap();
        let shown = format!("{:?}", config.db());
        assert_eq!(shown, "beer@db:3306/beers");
    }
}
