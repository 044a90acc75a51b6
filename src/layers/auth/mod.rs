//! `auth`: client keys and admin keys.
//!
//! A client presents its key as `Authorization: Bearer K`, `x-api-key: K`,
//! or in the header named by [`AuthPolicy::header`]. The presented key is
//! looked up by a hash keyed with a per-process secret, and compared with
//! the key(s) of that hash in constant time (the [`subtle`] crate): the cost
//! does not grow with the number of keys, and timing tells nothing about
//! them. Then:
//!
//! - **no key** → 401 `missing_api_key`, **an unknown key** → 401
//!   `invalid_api_key`, in the client's format (OpenAI or Anthropic), with
//!   `WWW-Authenticate: Bearer`; nothing further runs.
//! - **a valid key** → the request goes on with [`ClientIdentity`] (which
//!   `rate_limit` keys on) and [`ClientCredential`] (which a backend with
//!   `api_key = "passthrough"` forwards) in its extensions, and with every
//!   credential header — `authorization`, `x-api-key`, `api-key`,
//!   `x-goog-api-key` and the custom header — removed, so no layer and no
//!   upstream ever sees the client's key in a header.
//!
//! **JWT clients** ([`AuthPolicy::jwt`], `[auth] jwt`): a presented
//! credential shaped like a JWT (`a.b.c`) that is not a configured key is
//! verified as a token ([`JwtPolicy::verify`](crate::layers::jwt::JwtPolicy::verify):
//! algorithm, signature, `exp`/`nbf` with a 30 s leeway, `iss`, `aud`, `sub`).
//! A valid one is a client whose identity is `jwt:<sub>` (for `rate_limit`,
//! logs and the counters); an invalid one is a 401 whose code and message say
//! why (`token_expired`, `token_not_yet_valid`, `invalid_token_signature`,
//! `invalid_token_issuer`, `invalid_token_audience`, `invalid_token_algorithm`,
//! `invalid_token_claims`, `malformed_token`). A token is never an admin
//! credential.
//!
//! **Before the body.** In the server, [`App`](crate::App) makes this
//! check from the headers before it reads a request's body, and passes the
//! result ([`Checked`]) in the request's extensions; the layer takes it
//! instead of checking again (so a refusal is counted once, a JWT verified
//! once). A refused request reaches the layer with an
//! [`LlmRequest::unread`](crate::request::LlmRequest::unread): its body was
//! never read. Used alone, the layer checks the headers itself.
//!
//! # Virtual keys
//!
//! A [`VirtualKey`] (`[[keys]]`, or a JSON line of the keys file) is a
//! client key with a name and its own rules:
//!
//! - **`expires`**: presented at or after that instant → 401 `key_expired`
//!   (the message names the key and when it expired), checked with the
//!   credential, before the body is read.
//! - **`models`** ([`ModelAllowList`]: exact names and `*`/`?` patterns): the
//!   model of the parsed request ([`LlmRequest::model`](crate::request::LlmRequest::model),
//!   which the app put in the extensions before the stack runs — no second
//!   parse) outside the list → 403 `model_not_allowed` in the client's format.
//!   A request with no parsed body cannot show its model: refused too.
//! - the rest is for the layers after `auth`: the request carries a
//!   [`ClientKey`] (the key, and its [`BudgetGroup`]) in its extensions and
//!   its [`RequestContext`](crate::request::RequestContext) —
//!   `rate_limit` applies the key's [`KeyRateLimit`] instead of
//!   `[rate_limit]`, and the [`BudgetSpec`] is the `budget` layer's.
//!
//! A JWT client may carry a budget group too
//! ([`JwtPolicy::budget_group_claim`](crate::layers::jwt::JwtPolicy::budget_group_claim)).
//! A plain key, an admin key and a JWT without a group carry no
//! [`ClientKey`]: nothing is added to their requests.
//!
//! Admin keys ([`AuthPolicy::admin_key`]) may also call the admin endpoints
//! (see [`is_admin_path`] and [`KeyStore::check_admin`]); an admin key is a
//! valid client key too.
//!
//! The keys live in a [`KeyStore`] shared by the layer and the admin API.
//! [`KeyStore::reload`] re-reads the keys file and swaps the whole key set at
//! once (`RwLock<Arc<KeySet>>`, held only to clone the `Arc`): requests in
//! flight finish with the set they started with, new ones see the new set,
//! nothing is dropped. The store also counts requests, successes and
//! failures (status ≥ 400) per key; keys only ever leave it masked
//! ([`mask_key`](crate::secret::mask_key)).
//!
//! **Where keys come from** (built by the config): `[auth] keys`, the
//! variables `AUTH_KEY` and `AUTH_KEY_01`..`AUTH_KEY_99`, the lines of
//! `keys_file` (relative to the config file; blank lines and `#` comments
//! ignored) and `admin_keys`; the key header may also be named by the variable
//! `AUTH_HEADER_NAME`. `ENABLE_AUTH=false` in the environment (the switch of the
//! routers llm-router replaces) takes `auth` out of the order, whatever the
//! config says.
//!
//! ```
//! use http::{Request, Response};
//! use tower::{service_fn, Layer, ServiceExt};
//! use llm_router::ProxyBody;
//! use llm_router::layers::auth::{AuthLayer, AuthPolicy, KeyStore};
//! use llm_router::layers::rate_limit::ClientIdentity;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let keys = KeyStore::new(AuthPolicy::new().key("sk-team-a-0123456789").admin_key("sk-admin-0123456789"));
//! let upstream = service_fn(|req: Request<ProxyBody>| async move {
//!     // The key reached the stack as an identity, not as a header.
//!     assert!(req.headers().get("authorization").is_none());
//!     assert!(req.extensions().get::<ClientIdentity>().is_some());
//!     Ok::<_, std::convert::Infallible>(Response::new(ProxyBody::empty()))
//! });
//! let service = AuthLayer::new(keys.into()).layer(upstream);
//!
//! let req = Request::post("/v1/chat/completions")
//!     .header("authorization", "Bearer sk-team-a-0123456789")
//!     .body(ProxyBody::empty()).unwrap();
//! assert_eq!(service.clone().oneshot(req).await.unwrap().status(), 200);
//!
//! let req = Request::post("/v1/chat/completions")
//!     .header("x-api-key", "sk-wrong")
//!     .body(ProxyBody::empty()).unwrap();
//! assert_eq!(service.oneshot(req).await.unwrap().status(), 401);
//! # }
//! ```

mod info;
pub mod jwt;
mod keys;
mod layer;
mod paths;
mod policy;
#[cfg(test)]
mod tests;

pub use keys::{keys_equal, Authenticated, KeySet, KeyStats, KeyStore, ReloadReport, Role};
pub use layer::Checked;
#[cfg(feature = "access")]
pub use layer::{Auth, AuthLayer, ResponseFuture};
pub use paths::{is_admin_path, is_read_only_operation, ADMIN_PATHS};
pub use policy::{
    key_problem, merge_keys, read_keys_file, AuthKey, AuthPolicy, KeySource, KeysFileError,
};

pub use crate::keys::{
    conflicting_group_budgets, group_budgets, name_problem, BudgetError, BudgetGroup, BudgetId,
    BudgetLimit, BudgetPeriod, BudgetSpec, ClientKey, Expiry, KeyBudget, KeyError, KeyRateLimit,
    ModelAllowList, ModelPattern, VirtualKey, MAX_METADATA_ENTRIES, MAX_METADATA_KEY_LEN,
    MAX_METADATA_VALUE_LEN, MAX_MODEL_NAME_LEN, MAX_NAME_LEN, MAX_PATTERNS, MAX_PATTERN_LEN,
    MAX_ROLLING,
};

pub use crate::layers::rate_limit::ClientIdentity;
pub use crate::upstream::provider::ClientCredential;
