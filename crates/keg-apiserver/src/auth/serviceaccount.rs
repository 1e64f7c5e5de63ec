//! Service-account tokens: JWTs signed with a key kept in the data dir (ES256), as upstream's
//! token issuer makes them. Bound tokens (TokenRequest) carry an audience, an expiry and the
//! object they are bound to; legacy Secret tokens never expire but die with their Secret.
//! Verification checks the signature, the time, the audience, and that the account and the
//! bound object still exist with the same uid.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::Digest;

use super::UserInfo;
use crate::state::ApiState;

/// The issuer of bound tokens, and the audience the API server accepts, as on EKS and kubeadm.
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// The issuer upstream's legacy Secret tokens name.
pub const LEGACY_ISSUER: &str = "kubernetes/serviceaccount";

/// `name` and `uid` of an object a token names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ref {
    /// The object's name.
    pub name: String,
    /// The object's uid.
    pub uid: String,
}

impl Ref {
    /// The name and uid of a stored object.
    pub fn of(obj: &Value) -> Ref {
        Ref {
            name: crate::objects::name(obj).to_string(),
            uid: crate::objects::meta_str(obj, "uid")
                .unwrap_or_default()
                .to_string(),
        }
    }
}

/// The `kubernetes.io` claim of a bound token.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Private {
    /// The account's namespace.
    pub namespace: String,
    /// The account.
    pub serviceaccount: Ref,
    /// The pod the token is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<Ref>,
    /// The Secret the token is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<Ref>,
    /// The node the token is bound to (or the bound pod runs on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<Ref>,
}

/// The claims of a service-account token (bound or legacy).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The issuer.
    pub iss: String,
    /// `system:serviceaccount:NS:NAME`.
    pub sub: String,
    /// Audiences (bound tokens).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aud: Vec<String>,
    /// Expiry, seconds since the epoch (bound tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    /// Issued at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// Not before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// The token's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// What a bound token is bound to.
    #[serde(
        default,
        rename = "kubernetes.io",
        skip_serializing_if = "Option::is_none"
    )]
    pub kubernetes: Option<Private>,
    /// A legacy token's namespace.
    #[serde(
        default,
        rename = "kubernetes.io/serviceaccount/namespace",
        skip_serializing_if = "Option::is_none"
    )]
    pub legacy_namespace: Option<String>,
    /// A legacy token's Secret.
    #[serde(
        default,
        rename = "kubernetes.io/serviceaccount/secret.name",
        skip_serializing_if = "Option::is_none"
    )]
    pub legacy_secret: Option<String>,
    /// A legacy token's account name.
    #[serde(
        default,
        rename = "kubernetes.io/serviceaccount/service-account.name",
        skip_serializing_if = "Option::is_none"
    )]
    pub legacy_account: Option<String>,
    /// A legacy token's account uid.
    #[serde(
        default,
        rename = "kubernetes.io/serviceaccount/service-account.uid",
        skip_serializing_if = "Option::is_none"
    )]
    pub legacy_account_uid: Option<String>,
}

/// Issues and verifies service-account tokens with the cluster's signing key.
pub struct ServiceAccountTokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    key_id: String,
    jwk: Value,
}

impl ServiceAccountTokens {
    /// Loads the signing key from `dir/service-account.key`, creating it the first time.
    pub fn load_or_create(dir: &Path) -> Result<ServiceAccountTokens> {
        let path = dir.join("service-account.key");
        let key = match std::fs::read_to_string(&path) {
            Ok(pem) => rcgen::KeyPair::from_pem(&pem)
                .with_context(|| format!("{} is not a valid key", path.display()))?,
            Err(_) => {
                let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
                crate::pki::write_private(&path, &key.serialize_pem())?;
                key
            }
        };
        // An uncompressed P-256 point: 0x04, then x and y of 32 bytes each.
        let point = key.public_key_raw();
        anyhow::ensure!(
            point.len() == 65 && point[0] == 4,
            "{} is not a P-256 key",
            path.display()
        );
        let (x, y) = (
            URL_SAFE_NO_PAD.encode(&point[1..33]),
            URL_SAFE_NO_PAD.encode(&point[33..]),
        );
        // As upstream: the key id is the SHA-256 of the public key's PKIX form.
        let key_id = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(
            rcgen::PublicKeyData::subject_public_key_info(&key),
        ));
        Ok(ServiceAccountTokens {
            encoding: EncodingKey::from_ec_der(&key.serialize_der()),
            decoding: DecodingKey::from_ec_components(&x, &y)?,
            jwk: json!({"use": "sig", "kty": "EC", "kid": key_id, "crv": "P-256", "alg": "ES256", "x": x, "y": y}),
            key_id,
        })
    }

    /// Signs `claims` into a token.
    pub fn sign(&self, claims: &Claims) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.key_id.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("claims serialize")
    }

    /// A legacy token (upstream's token controller's): `account` of `ns`, held by the Secret
    /// `secret`, with no audience and no expiry.
    pub fn sign_legacy(&self, ns: &str, secret: &str, account: &Ref) -> String {
        self.sign(&Claims {
            iss: LEGACY_ISSUER.to_string(),
            sub: format!("system:serviceaccount:{ns}:{}", account.name),
            legacy_namespace: Some(ns.to_string()),
            legacy_secret: Some(secret.to_string()),
            legacy_account: Some(account.name.clone()),
            legacy_account_uid: Some(account.uid.clone()),
            ..Claims::default()
        })
    }

    /// The claims of a token this key signed; the time and audience are checked by
    /// [`authenticate`], which knows the clock and the bound objects.
    pub fn verify_signature(&self, token: &str) -> Option<Claims> {
        let mut validation = Validation::new(Algorithm::ES256);
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .ok()
            .map(|t| t.claims)
    }

    /// The key set of `/openid/v1/jwks`.
    pub fn jwks(&self) -> Value {
        json!({"keys": [self.jwk]})
    }
}

/// The document of `/.well-known/openid-configuration`, as upstream serves it.
pub fn openid_configuration() -> Value {
    json!({
        "issuer": ISSUER,
        "jwks_uri": format!("{ISSUER}/openid/v1/jwks"),
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
    })
}

/// Whether a bearer token looks like a JWT (three dot-separated parts).
pub fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3
}

/// The user a service-account token names, at `now` (seconds since the epoch), for an API
/// request (`audiences` empty: the API server's own audience) or a TokenReview's audiences.
/// `None` when the token is not valid: bad signature, expired, not yet valid, for another
/// audience, or its account or bound object is gone.
pub async fn authenticate(
    state: &ApiState,
    token: &str,
    audiences: &[String],
    now: i64,
) -> Option<(UserInfo, Vec<String>)> {
    let claims = state.auth.service_accounts.verify_signature(token)?;
    if claims.iss == LEGACY_ISSUER {
        return legacy(state, token, &claims).await;
    }
    if claims.iss != ISSUER {
        return None;
    }
    let wanted: Vec<String> = if audiences.is_empty() {
        vec![ISSUER.to_string()]
    } else {
        audiences.to_vec()
    };
    let matched: Vec<String> = wanted
        .into_iter()
        .filter(|a| claims.aud.contains(a))
        .collect();
    if matched.is_empty() || claims.exp? <= now || claims.nbf.unwrap_or(0) > now {
        return None;
    }
    let private = claims.kubernetes.as_ref()?;
    let ns = private.namespace.as_str();
    if !exists(state, "serviceaccounts", Some(ns), &private.serviceaccount).await {
        return None;
    }
    let mut extra = BTreeMap::new();
    if let Some(pod) = &private.pod {
        if !exists(state, "pods", Some(ns), pod).await {
            return None;
        }
        extra.insert(
            "authentication.kubernetes.io/pod-name".into(),
            vec![pod.name.clone()],
        );
        extra.insert(
            "authentication.kubernetes.io/pod-uid".into(),
            vec![pod.uid.clone()],
        );
    }
    if let Some(secret) = &private.secret
        && !exists(state, "secrets", Some(ns), secret).await
    {
        return None;
    }
    if let Some(node) = &private.node {
        // A pod-bound token names the pod's node for information; only a node-bound token
        // dies with its node.
        if private.pod.is_none() && !exists(state, "nodes", None, node).await {
            return None;
        }
        extra.insert(
            "authentication.kubernetes.io/node-name".into(),
            vec![node.name.clone()],
        );
        extra.insert(
            "authentication.kubernetes.io/node-uid".into(),
            vec![node.uid.clone()],
        );
    }
    if let Some(jti) = &claims.jti {
        extra.insert(
            "authentication.kubernetes.io/credential-id".into(),
            vec![format!("JTI={jti}")],
        );
    }
    let user = UserInfo {
        uid: private.serviceaccount.uid.clone(),
        extra,
        ..UserInfo::service_account(ns, &private.serviceaccount.name)
    };
    Some((user, matched))
}

/// A legacy Secret token: valid while its Secret exists and still holds it.
async fn legacy(state: &ApiState, token: &str, claims: &Claims) -> Option<(UserInfo, Vec<String>)> {
    let ns = claims.legacy_namespace.as_deref()?;
    let secret_name = claims.legacy_secret.as_deref()?;
    let account = claims.legacy_account.as_deref()?;
    let secrets = state.registry.get("", "v1", "secrets")?;
    let secret = state
        .objects
        .try_get(&secrets, Some(ns), secret_name)
        .await
        .ok()??;
    let stored = secret["data"]["token"].as_str().and_then(|t| {
        base64::engine::general_purpose::STANDARD
            .decode(t)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
    })?;
    if stored != token {
        return None;
    }
    let uid = claims.legacy_account_uid.clone().unwrap_or_default();
    let sa = Ref {
        name: account.to_string(),
        uid: uid.clone(),
    };
    if !exists(state, "serviceaccounts", Some(ns), &sa).await {
        return None;
    }
    let user = UserInfo {
        uid,
        ..UserInfo::service_account(ns, account)
    };
    Some((user, vec![ISSUER.to_string()]))
}

/// Whether the object a token names exists with the same uid (any uid when none is named).
async fn exists(state: &ApiState, plural: &str, ns: Option<&str>, named: &Ref) -> bool {
    let Some(res) = state.registry.get("", "v1", plural) else {
        return false;
    };
    match state.objects.try_get(&res, ns, &named.name).await {
        Ok(Some(obj)) => {
            named.uid.is_empty() || obj["metadata"]["uid"].as_str() == Some(named.uid.as_str())
        }
        _ => false,
    }
}
