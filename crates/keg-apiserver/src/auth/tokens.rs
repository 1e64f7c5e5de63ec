//! Static bearer tokens: the admin's, kept in the data dir, and the ones the server issues at
//! start to keg's own components (controllers, schedulers, node agent), each naming its user.

use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::sync::{Arc, RwLock};

use anyhow::Result;
use rand::Rng;

use super::UserInfo;

/// The accepted static tokens and the user each names.
#[derive(Clone)]
pub struct Tokens {
    admin: String,
    users: Arc<RwLock<HashMap<String, UserInfo>>>,
}

fn random_token() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    hex::encode(bytes)
}

impl Tokens {
    /// Loads the admin token from `dir/admin.token`, creating a random one the first time.
    pub fn load_or_create(dir: &Path) -> Result<Tokens> {
        let path = dir.join("admin.token");
        let admin = match fs::read_to_string(&path) {
            Ok(token) if !token.trim().is_empty() => token.trim().to_string(),
            _ => {
                let token = random_token();
                crate::pki::write_private(&path, &token)?;
                token
            }
        };
        let users = HashMap::from([(admin.clone(), UserInfo::admin())]);
        Ok(Tokens {
            admin,
            users: Arc::new(RwLock::new(users)),
        })
    }

    /// The admin token.
    pub fn admin(&self) -> &str {
        &self.admin
    }

    /// A new token for `user`, valid until the server stops (for in-process components).
    pub fn issue(&self, user: UserInfo) -> String {
        let token = random_token();
        self.users
            .write()
            .expect("tokens lock")
            .insert(token.clone(), user);
        token
    }

    /// The user a presented token names, compared in constant time.
    pub fn user(&self, presented: &str) -> Option<UserInfo> {
        let users = self.users.read().expect("tokens lock");
        let mut found = None;
        for (token, user) in users.iter() {
            if constant_time_eq(token.as_bytes(), presented.as_bytes()) {
                found = Some(user.clone());
            }
        }
        found
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
