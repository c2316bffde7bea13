//! Short-lived signed tokens and scopes (issue 16 item 3).
//!
//! A long-lived key (configured as a SHA-256 hash, [`crate::auth`]) carries [`Scopes`]; with it a
//! client asks for a JWT (`POST /api/token`, HS256 over a server secret) that carries the same
//! scopes, or fewer, and expires after a short time (15 minutes by default). Every entry point
//! resolves the presented credential — key or token — to a [`Principal`] with [`Authenticator`] and
//! checks the scope its route needs ([`required_scope`]): a bad or expired token is a 401 with an
//! `invalid_token` challenge, a valid credential without the scope a 403 ([`Denied`]).
//!
//! Signing and verification are `jsonwebtoken`'s (algorithm pinned to HS256, so `alg: none` or an
//! RSA/HMAC confusion is refused); expiry is checked here against an injected clock so tests can move
//! time, with no leeway.

use std::fmt;
use std::sync::Arc;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::auth::{hash_key, ApiKeys, AuthError};

/// The one tenant of this release; the claim is carried so tokens stay valid once tenants exist.
pub const DEFAULT_TENANT: &str = "default";
/// Token lifetime when not configured: 15 minutes.
pub const DEFAULT_TTL_SECONDS: i64 = 15 * 60;
/// Shortest accepted signing secret: 32 bytes, the HS256 output size (RFC 7518 §3.2).
pub const MIN_SECRET_BYTES: usize = 32;

/// One permission a key or token carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Send telemetry (the OTLP routes).
    Ingest,
    /// Read the query API, `/metrics` and the WebSocket.
    Read,
    /// Change state: alert rules, silences, registry writes, profile imports.
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::Ingest, Scope::Read, Scope::Admin];

    pub fn name(self) -> &'static str {
        match self {
            Scope::Ingest => "ingest",
            Scope::Read => "read",
            Scope::Admin => "admin",
        }
    }

    fn bit(self) -> u8 {
        match self {
            Scope::Ingest => 1,
            Scope::Read => 2,
            Scope::Admin => 4,
        }
    }

    pub fn parse(name: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.name() == name)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of scopes; written as the OAuth `scope` claim: names separated by spaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Scopes(u8);

impl Scopes {
    pub const NONE: Scopes = Scopes(0);
    pub const ALL: Scopes = Scopes(7);

    pub fn of(scopes: &[Scope]) -> Scopes {
        Scopes(scopes.iter().fold(0, |bits, s| bits | s.bit()))
    }

    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    pub fn is_subset_of(self, other: Scopes) -> bool {
        self.0 & !other.0 == 0
    }

    pub fn union(self, other: Scopes) -> Scopes {
        Scopes(self.0 | other.0)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// `"ingest read admin"` → the set; an unknown name is an error naming it.
    pub fn parse(text: &str) -> Result<Scopes, TokenError> {
        let mut scopes = Scopes::NONE;
        for name in text.split([' ', ',']).filter(|n| !n.is_empty()) {
            let scope =
                Scope::parse(name).ok_or_else(|| TokenError::UnknownScope(truncate(name)))?;
            scopes = scopes.union(Scopes::of(&[scope]));
        }
        Ok(scopes)
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = Scope::ALL
            .into_iter()
            .filter(|s| self.contains(*s))
            .map(Scope::name)
            .collect();
        f.write_str(&names.join(" "))
    }
}

fn truncate(text: &str) -> String {
    text.chars().take(40).collect()
}

/// Why a token was refused or could not be made; the `Display` text is the reason given to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token secret must be at least {MIN_SECRET_BYTES} bytes, got {0}")]
    SecretTooShort(usize),
    #[error("token expired at {expired_at} (unix seconds); get a new one with POST /api/token")]
    Expired { expired_at: i64 },
    #[error("token issued in the future (iat {issued_at})")]
    IssuedInFuture { issued_at: i64 },
    #[error("token signature is invalid")]
    BadSignature,
    #[error("malformed token: {0}")]
    Malformed(String),
    #[error("unknown scope {0:?} (known: ingest, read, admin)")]
    UnknownScope(String),
    #[error("could not sign the token: {0}")]
    Sign(String),
}

/// The claims of a Flowscope token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The key the token was issued from (`key:<first 12 hex digits of its SHA-256>`).
    pub sub: String,
    /// Space-separated scopes.
    pub scope: String,
    pub tenant: String,
    pub iat: i64,
    pub exp: i64,
}

/// A token as `POST /api/token` answers it (RFC 6749 §5.1 field names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IssuedToken {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until it expires.
    pub expires_in: i64,
    /// When it expires (unix seconds).
    pub expires_at: i64,
    /// The scopes it carries, space-separated.
    pub scope: String,
    pub tenant: String,
}

/// Signs and verifies tokens with one HS256 secret.
pub struct TokenIssuer {
    encoding: EncodingKey,
    decoding: DecodingKey,
    ttl_seconds: i64,
}

impl fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("ttl_seconds", &self.ttl_seconds)
            .finish_non_exhaustive()
    }
}

impl TokenIssuer {
    pub fn new(secret: &[u8], ttl_seconds: i64) -> Result<TokenIssuer, TokenError> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(TokenError::SecretTooShort(secret.len()));
        }
        Ok(TokenIssuer {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            ttl_seconds: ttl_seconds.max(1),
        })
    }

    pub fn ttl_seconds(&self) -> i64 {
        self.ttl_seconds
    }

    /// A token for `subject` with `scopes`, valid from `now` for the configured lifetime.
    pub fn issue(
        &self,
        subject: &str,
        scopes: Scopes,
        now: i64,
    ) -> Result<IssuedToken, TokenError> {
        let exp = now.saturating_add(self.ttl_seconds);
        let claims = Claims {
            sub: subject.to_string(),
            scope: scopes.to_string(),
            tenant: DEFAULT_TENANT.to_string(),
            iat: now,
            exp,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| TokenError::Sign(e.to_string()))?;
        Ok(IssuedToken {
            access_token: token,
            token_type: "Bearer".to_string(),
            expires_in: self.ttl_seconds,
            expires_at: exp,
            scope: claims.scope,
            tenant: claims.tenant,
        })
    }

    /// The claims of a token signed with this secret that has not expired at `now`.
    pub fn verify(&self, token: &str, now: i64) -> Result<(Claims, Scopes), TokenError> {
        let mut validation = Validation::new(Algorithm::HS256);
        // Expiry is checked below against the injected clock, without leeway.
        validation.validate_exp = false;
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation).map_err(
            |e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => TokenError::BadSignature,
                _ => TokenError::Malformed(truncate(&e.to_string())),
            },
        )?;
        let claims = data.claims;
        if now >= claims.exp {
            return Err(TokenError::Expired {
                expired_at: claims.exp,
            });
        }
        // A minute of skew between hosts is tolerated; more means a token from a wrong clock.
        if claims.iat > now.saturating_add(60) {
            return Err(TokenError::IssuedInFuture {
                issued_at: claims.iat,
            });
        }
        let scopes = Scopes::parse(&claims.scope)?;
        Ok((claims, scopes))
    }
}

/// Who made a request, and what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// `key:<12 hex digits>` (the key, or the key a token was issued from), or `anonymous`.
    pub subject: String,
    pub scopes: Scopes,
    pub tenant: String,
    /// Set when the credential was a token: its expiry (unix seconds).
    pub token_expires_at: Option<i64>,
}

impl Principal {
    /// Local mode without any credential configured: everything is allowed.
    pub fn anonymous() -> Principal {
        Principal {
            subject: "anonymous".to_string(),
            scopes: Scopes::ALL,
            tenant: DEFAULT_TENANT.to_string(),
            token_expires_at: None,
        }
    }

    pub fn is_token(&self) -> bool {
        self.token_expires_at.is_some()
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// No credential, or a key that matches none (401).
    #[error(transparent)]
    Unauthenticated(#[from] AuthError),
    /// A token that is expired, tampered with or malformed (401, `error="invalid_token"`).
    #[error("{0}")]
    InvalidToken(#[from] TokenError),
    /// A valid credential without the scope the route needs (403, `error="insufficient_scope"`).
    #[error("this request needs the `{needed}` scope; the credential has `{have}`")]
    Forbidden { needed: Scope, have: Scopes },
}

impl Denied {
    /// 401 or 403.
    pub fn status(&self) -> u16 {
        match self {
            Denied::Forbidden { .. } => 403,
            _ => 401,
        }
    }

    /// The `WWW-Authenticate` challenge (RFC 6750 §3).
    pub fn challenge(&self) -> String {
        match self {
            Denied::Unauthenticated(_) => crate::auth::CHALLENGE.to_string(),
            Denied::InvalidToken(error) => format!(
                "Bearer realm=\"flowscope\", error=\"invalid_token\", error_description=\"{}\"",
                quoted(&error.to_string())
            ),
            Denied::Forbidden { needed, .. } => format!(
                "Bearer realm=\"flowscope\", error=\"insufficient_scope\", scope=\"{needed}\""
            ),
        }
    }

    /// The JSON body: `{"error": "<reason>"}`.
    pub fn json_body(&self) -> String {
        serde_json::json!({ "error": self.to_string() }).to_string()
    }
}

/// Text safe inside a quoted-string of a header value.
fn quoted(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_ascii() && !c.is_ascii_control() && *c != '"' && *c != '\\')
        .collect()
}

/// "Now" in unix seconds (injected in tests).
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// Accepted keys with their scopes, and the token verifier when tokens are on.
#[derive(Clone)]
pub struct Authenticator {
    keys: Vec<(ApiKeys, Scopes)>,
    tokens: Option<Arc<TokenIssuer>>,
    clock: Clock,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("key_sets", &self.keys.len())
            .field("tokens", &self.tokens)
            .finish_non_exhaustive()
    }
}

impl Default for Authenticator {
    fn default() -> Self {
        Authenticator::new()
    }
}

impl Authenticator {
    /// No keys: [`Authenticator::is_open`] (every request is the anonymous principal).
    pub fn new() -> Authenticator {
        Authenticator {
            keys: Vec::new(),
            tokens: None,
            clock: Arc::new(system_now),
        }
    }

    /// Keys of this set carry `scopes` (a key in several sets has the union).
    pub fn with_keys(mut self, keys: ApiKeys, scopes: Scopes) -> Authenticator {
        if !keys.is_empty() {
            self.keys.push((keys, scopes));
        }
        self
    }

    pub fn with_tokens(mut self, issuer: TokenIssuer) -> Authenticator {
        self.tokens = Some(Arc::new(issuer));
        self
    }

    pub fn with_clock(mut self, clock: Clock) -> Authenticator {
        self.clock = clock;
        self
    }

    /// No key configured: nothing is checked.
    pub fn is_open(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn issuer(&self) -> Option<&TokenIssuer> {
        self.tokens.as_deref()
    }

    pub fn now(&self) -> i64 {
        (self.clock)()
    }

    /// Resolves a presented credential (already extracted from a header or `?token=`). `missing` is
    /// the reason given when there is none.
    pub fn authenticate(
        &self,
        presented: Option<&str>,
        missing: AuthError,
    ) -> Result<Principal, Denied> {
        if self.is_open() {
            return Ok(Principal::anonymous());
        }
        let presented = presented.map(str::trim).filter(|p| !p.is_empty());
        let presented = presented.ok_or(Denied::Unauthenticated(missing))?;
        if let Some(issuer) = self.tokens.as_deref().filter(|_| looks_like_jwt(presented)) {
            let (claims, scopes) = issuer.verify(presented, self.now())?;
            return Ok(Principal {
                subject: claims.sub,
                scopes,
                tenant: claims.tenant,
                token_expires_at: Some(claims.exp),
            });
        }
        let mut matched = None;
        for (keys, scopes) in &self.keys {
            if keys.accepts(presented) {
                matched = Some(matched.unwrap_or(Scopes::NONE).union(*scopes));
            }
        }
        let scopes = matched.ok_or(Denied::Unauthenticated(AuthError::Invalid))?;
        Ok(Principal {
            subject: key_id(presented),
            scopes,
            tenant: DEFAULT_TENANT.to_string(),
            token_expires_at: None,
        })
    }

    /// Authenticates and checks one scope (`None`: any authenticated principal).
    pub fn authorize(
        &self,
        presented: Option<&str>,
        missing: AuthError,
        needed: Option<Scope>,
    ) -> Result<Principal, Denied> {
        let principal = self.authenticate(presented, missing)?;
        match needed {
            Some(scope) if !principal.scopes.contains(scope) => Err(Denied::Forbidden {
                needed: scope,
                have: principal.scopes,
            }),
            _ => Ok(principal),
        }
    }

    /// A token for `principal` with `requested` scopes (default: all of the principal's). A token
    /// may only be issued from a key (`refresh` = false) or from either (`refresh` = true); it never
    /// carries a scope its credential lacks.
    pub fn issue_for(
        &self,
        principal: &Principal,
        requested: Option<Scopes>,
    ) -> Result<IssuedToken, IssueError> {
        let issuer = self.tokens.as_deref().ok_or(IssueError::Disabled)?;
        let scopes = requested.unwrap_or(principal.scopes);
        if !scopes.is_subset_of(principal.scopes) {
            return Err(IssueError::ScopeNotHeld {
                requested: scopes,
                held: principal.scopes,
            });
        }
        if scopes.is_empty() {
            return Err(IssueError::NoScope);
        }
        Ok(issuer.issue(&principal.subject, scopes, self.now())?)
    }
}

/// Why `POST /api/token` refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IssueError {
    #[error("tokens are off: start with a token secret (--token-secret / TOKEN_SECRET)")]
    Disabled,
    #[error("a token cannot carry `{requested}`; the credential has `{held}`")]
    ScopeNotHeld { requested: Scopes, held: Scopes },
    #[error("a token needs at least one scope")]
    NoScope,
    #[error("POST /api/token takes a key, not a token; use POST /api/token/refresh")]
    KeyRequired,
    #[error(transparent)]
    Token(#[from] TokenError),
}

/// Three base64url segments: a JWT (keys are opaque and never contain two dots in this form).
pub fn looks_like_jwt(credential: &str) -> bool {
    let mut parts = credential.split('.');
    let ok = |p: Option<&str>| {
        p.is_some_and(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
    };
    credential.starts_with("eyJ")
        && ok(parts.next())
        && ok(parts.next())
        && ok(parts.next())
        && parts.next().is_none()
}

/// The key id a principal is named by: the first 12 hex digits of the key's SHA-256.
pub fn key_id(key: &str) -> String {
    format!("key:{}", &hash_key(key)[..12])
}

/// The scope a route needs: the OTLP routes `ingest`; state changes (rules, silences, registry
/// writes, profile imports) `admin`; reads, `/metrics`, the WebSocket and acknowledgements `read`;
/// `None` for the token routes (any valid credential; they check on their own).
pub fn required_scope(method: &str, path: &str) -> Option<Scope> {
    if path == "/api/token" || path == "/api/token/refresh" {
        return None;
    }
    if path.starts_with("/v1/") || path == "/ingest" {
        return Some(Scope::Ingest);
    }
    let reads = matches!(method, "GET" | "HEAD" | "OPTIONS");
    if reads || !path.starts_with("/api/") {
        return Some(Scope::Read);
    }
    // Queries sent as forms (Prometheus clients) and acknowledgements are reads.
    let is_query = path.starts_with("/api/v1/") || path == "/api/query";
    let is_ack = path.starts_with("/api/alerts/") && path.ends_with("/ack");
    if is_query || is_ack {
        Some(Scope::Read)
    } else {
        Some(Scope::Admin)
    }
}

fn system_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicI64, Ordering};

    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn clock(start: i64) -> (Arc<AtomicI64>, Clock) {
        let now = Arc::new(AtomicI64::new(start));
        let read = now.clone();
        (now, Arc::new(move || read.load(Ordering::SeqCst)))
    }

    fn authenticator(now: &Clock) -> Authenticator {
        Authenticator::new()
            .with_keys(
                ApiKeys::from_clear_keys(["reader"]),
                Scopes::of(&[Scope::Read]),
            )
            .with_keys(
                ApiKeys::from_clear_keys(["sender"]),
                Scopes::of(&[Scope::Ingest]),
            )
            .with_keys(ApiKeys::from_clear_keys(["boss"]), Scopes::ALL)
            .with_tokens(TokenIssuer::new(SECRET, 900).unwrap())
            .with_clock(now.clone())
    }

    #[test]
    fn issued_tokens_verify_with_their_claims() {
        let issuer = TokenIssuer::new(SECRET, 900).unwrap();
        let issued = issuer
            .issue("key:abc", Scopes::of(&[Scope::Read, Scope::Admin]), 1_000)
            .unwrap();
        assert_eq!(issued.expires_at, 1_900);
        assert_eq!(issued.scope, "read admin");
        let (claims, scopes) = issuer.verify(&issued.access_token, 1_899).unwrap();
        assert_eq!(claims.sub, "key:abc");
        assert_eq!(claims.tenant, "default");
        assert_eq!((claims.iat, claims.exp), (1_000, 1_900));
        assert_eq!(scopes, Scopes::of(&[Scope::Read, Scope::Admin]));
    }

    #[test]
    fn expired_tokens_are_refused_at_their_expiry() {
        let issuer = TokenIssuer::new(SECRET, 60).unwrap();
        let token = issuer.issue("k", Scopes::ALL, 100).unwrap().access_token;
        assert!(issuer.verify(&token, 159).is_ok());
        assert_eq!(
            issuer.verify(&token, 160),
            Err(TokenError::Expired { expired_at: 160 })
        );
    }

    #[test]
    fn tampered_or_foreign_tokens_are_refused() {
        let issuer = TokenIssuer::new(SECRET, 60).unwrap();
        let other = TokenIssuer::new(b"another secret of thirty-two bytes!", 60).unwrap();
        let token = other.issue("k", Scopes::ALL, 100).unwrap().access_token;
        assert_eq!(issuer.verify(&token, 100), Err(TokenError::BadSignature));
        // Payload swapped for one claiming more scopes: the signature no longer matches.
        let mine = issuer
            .issue("k", Scopes::of(&[Scope::Read]), 100)
            .unwrap()
            .access_token;
        let parts: Vec<&str> = mine.split('.').collect();
        let forged_payload = token.split('.').nth(1).unwrap();
        let forged = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
        assert_eq!(issuer.verify(&forged, 100), Err(TokenError::BadSignature));
        // `alg: none` with no signature.
        let none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{forged_payload}.");
        assert!(matches!(
            issuer.verify(&none, 100),
            Err(TokenError::Malformed(_))
        ));
        assert!(matches!(
            issuer.verify("garbage", 100),
            Err(TokenError::Malformed(_))
        ));
    }

    #[test]
    fn short_secrets_are_refused() {
        assert_eq!(
            TokenIssuer::new(b"short", 60).unwrap_err(),
            TokenError::SecretTooShort(5)
        );
    }

    #[test]
    fn keys_and_tokens_resolve_to_their_scopes() {
        let (now, clock) = clock(10_000);
        let auth = authenticator(&clock);
        let reader = auth
            .authorize(Some("reader"), AuthError::MissingHeader, Some(Scope::Read))
            .unwrap();
        assert_eq!(reader.subject, key_id("reader"));
        assert_eq!(
            auth.authorize(Some("reader"), AuthError::MissingHeader, Some(Scope::Admin)),
            Err(Denied::Forbidden {
                needed: Scope::Admin,
                have: Scopes::of(&[Scope::Read])
            })
        );
        assert_eq!(
            auth.authorize(Some("sender"), AuthError::MissingHeader, Some(Scope::Read))
                .unwrap_err()
                .status(),
            403
        );
        assert_eq!(
            auth.authorize(None, AuthError::MissingHeader, Some(Scope::Read)),
            Err(Denied::Unauthenticated(AuthError::MissingHeader))
        );
        assert_eq!(
            auth.authorize(Some("nobody"), AuthError::MissingHeader, Some(Scope::Read)),
            Err(Denied::Unauthenticated(AuthError::Invalid))
        );

        // A token from the admin key, narrowed to read.
        let boss = auth
            .authenticate(Some("boss"), AuthError::MissingHeader)
            .unwrap();
        let token = auth
            .issue_for(&boss, Some(Scopes::of(&[Scope::Read])))
            .unwrap();
        let principal = auth
            .authorize(
                Some(&token.access_token),
                AuthError::MissingHeader,
                Some(Scope::Read),
            )
            .unwrap();
        assert_eq!(principal.subject, key_id("boss"));
        assert_eq!(principal.token_expires_at, Some(10_900));
        let denied = auth
            .authorize(
                Some(&token.access_token),
                AuthError::MissingHeader,
                Some(Scope::Admin),
            )
            .unwrap_err();
        assert_eq!(denied.status(), 403);
        assert!(denied.challenge().contains("insufficient_scope"));

        // Fifteen minutes later it is refused with 401 and an invalid_token challenge.
        now.store(10_900, Ordering::SeqCst);
        let expired = auth
            .authorize(
                Some(&token.access_token),
                AuthError::MissingHeader,
                Some(Scope::Read),
            )
            .unwrap_err();
        assert_eq!(expired.status(), 401);
        assert!(expired.challenge().contains("error=\"invalid_token\""));
        assert!(expired.challenge().contains("token expired"));
    }

    #[test]
    fn tokens_never_widen_the_keys_scopes() {
        let (_, clock) = clock(0);
        let auth = authenticator(&clock);
        let reader = auth
            .authenticate(Some("reader"), AuthError::MissingHeader)
            .unwrap();
        assert!(matches!(
            auth.issue_for(&reader, Some(Scopes::ALL)),
            Err(IssueError::ScopeNotHeld { .. })
        ));
        assert_eq!(
            auth.issue_for(&reader, None).unwrap().scope,
            "read".to_string()
        );
        assert!(matches!(
            Authenticator::new()
                .with_keys(ApiKeys::from_clear_keys(["k"]), Scopes::ALL)
                .issue_for(&reader, None),
            Err(IssueError::Disabled)
        ));
    }

    #[test]
    fn an_open_authenticator_lets_everyone_do_everything() {
        let auth = Authenticator::new();
        assert!(auth.is_open());
        assert_eq!(
            auth.authorize(None, AuthError::MissingHeader, Some(Scope::Admin)),
            Ok(Principal::anonymous())
        );
    }

    #[test]
    fn routes_need_the_documented_scopes() {
        assert_eq!(required_scope("POST", "/v1/metrics"), Some(Scope::Ingest));
        assert_eq!(required_scope("GET", "/api/services"), Some(Scope::Read));
        assert_eq!(required_scope("GET", "/ws"), Some(Scope::Read));
        assert_eq!(required_scope("GET", "/metrics"), Some(Scope::Read));
        assert_eq!(required_scope("POST", "/api/v1/query"), Some(Scope::Read));
        assert_eq!(
            required_scope("POST", "/api/alerts/abc/ack"),
            Some(Scope::Read)
        );
        assert_eq!(
            required_scope("PUT", "/api/alert-rules"),
            Some(Scope::Admin)
        );
        assert_eq!(required_scope("POST", "/api/silences"), Some(Scope::Admin));
        assert_eq!(
            required_scope("DELETE", "/api/silences/1"),
            Some(Scope::Admin)
        );
        assert_eq!(
            required_scope("POST", "/api/registry/instances"),
            Some(Scope::Admin)
        );
        assert_eq!(required_scope("POST", "/api/token"), None);
    }

    #[test]
    fn scope_lists_parse_and_print() {
        assert_eq!(
            Scopes::parse("read  admin").unwrap(),
            Scopes::of(&[Scope::Admin, Scope::Read])
        );
        assert_eq!(Scopes::ALL.to_string(), "ingest read admin");
        assert!(matches!(
            Scopes::parse("read root"),
            Err(TokenError::UnknownScope(_))
        ));
    }
}
