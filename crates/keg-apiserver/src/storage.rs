//! Kubernetes objects over the revisioned store: keys, resourceVersion stamping, and
//! conditional writes mapped to upstream's errors.

use std::sync::Arc;

use keg_store::{Error as StoreError, ListOptions, Store};
use serde_json::Value;

use crate::error::{ApiError, Result};
use crate::objects::{decode, encode, name};
use crate::resources::Resource;

/// One page of objects.
pub struct ObjectPage {
    /// The objects, in key order.
    pub items: Vec<Value>,
    /// The revision the page was read at.
    pub revision: u64,
    /// The key of the last item, when more follow.
    pub next_key: Option<String>,
}

/// Decodes a stored object in the shape `res` serves it.
pub fn decode_for(res: &Resource, kv: &keg_store::KeyValue) -> Result<Value> {
    decode(kv).map(|obj| crate::convert::for_resource(res, obj))
}

/// Object storage for the API server.
#[derive(Clone)]
pub struct Objects {
    store: Arc<dyn Store>,
}

impl Objects {
    /// Wraps a store.
    pub fn new(store: Arc<dyn Store>) -> Objects {
        Objects { store }
    }

    /// The underlying store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Reads one object; 404 when missing.
    pub async fn get(&self, res: &Resource, ns: Option<&str>, obj_name: &str) -> Result<Value> {
        match self.store.get(&res.key(ns, obj_name)).await? {
            Some(kv) => decode_for(res, &kv),
            None => Err(ApiError::not_found(&res.group, &res.plural, obj_name)),
        }
    }

    /// Reads one object if it exists.
    pub async fn try_get(
        &self,
        res: &Resource,
        ns: Option<&str>,
        obj_name: &str,
    ) -> Result<Option<Value>> {
        match self.store.get(&res.key(ns, obj_name)).await? {
            Some(kv) => decode_for(res, &kv).map(Some),
            None => Ok(None),
        }
    }

    /// Lists a page of objects under a namespace (or all).
    pub async fn list(
        &self,
        res: &Resource,
        ns: Option<&str>,
        start_after: Option<String>,
        limit: Option<usize>,
        revision: Option<u64>,
    ) -> Result<ObjectPage> {
        let prefix = res.key_prefix(ns);
        let page = self
            .store
            .list(ListOptions {
                prefix,
                start_after,
                limit,
                revision,
            })
            .await?;
        let next_key = if page.more {
            page.items.last().map(|kv| kv.key.clone())
        } else {
            None
        };
        let items = page
            .items
            .iter()
            .map(|kv| decode_for(res, kv))
            .collect::<Result<Vec<_>>>()?;
        Ok(ObjectPage {
            items,
            revision: page.revision,
            next_key,
        })
    }

    /// Creates an object; 409 AlreadyExists when the name is taken.
    pub async fn create(&self, res: &Resource, ns: Option<&str>, obj: &Value) -> Result<Value> {
        let obj_name = name(obj);
        let stored = crate::convert::to_storage(res, obj);
        match self
            .store
            .create(&res.key(ns, obj_name), encode(&stored))
            .await
        {
            Ok(kv) => decode_for(res, &kv),
            Err(StoreError::AlreadyExists { .. }) => {
                Err(ApiError::already_exists(&res.group, &res.plural, obj_name))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Replaces an object whose resourceVersion must be `expected`; 409 Conflict otherwise.
    pub async fn update(
        &self,
        res: &Resource,
        ns: Option<&str>,
        obj: &Value,
        expected: u64,
    ) -> Result<Value> {
        let obj_name = name(obj);
        let stored = crate::convert::to_storage(res, obj);
        match self
            .store
            .update(&res.key(ns, obj_name), encode(&stored), expected)
            .await
        {
            Ok(kv) => decode_for(res, &kv),
            Err(StoreError::Conflict { .. }) => {
                Err(ApiError::conflict(&res.group, &res.plural, obj_name))
            }
            Err(StoreError::NotFound(_)) => {
                Err(ApiError::not_found(&res.group, &res.plural, obj_name))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes an object, checking its resourceVersion when given. Returns the last value.
    pub async fn delete(
        &self,
        res: &Resource,
        ns: Option<&str>,
        obj_name: &str,
        expected: Option<u64>,
    ) -> Result<Value> {
        match self.store.delete(&res.key(ns, obj_name), expected).await {
            Ok(kv) => decode_for(res, &kv),
            Err(StoreError::Conflict { .. }) => {
                Err(ApiError::conflict(&res.group, &res.plural, obj_name))
            }
            Err(StoreError::NotFound(_)) => {
                Err(ApiError::not_found(&res.group, &res.plural, obj_name))
            }
            Err(e) => Err(e.into()),
        }
    }
}
