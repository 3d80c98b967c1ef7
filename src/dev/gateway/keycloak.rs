//! The emulated Keycloak token endpoint of realm `shasta`: password, refresh-token and
//! client-credentials grants, with Keycloak's reply fields and error bodies.

use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hyper::header::{HeaderMap, AUTHORIZATION, CONTENT_TYPE};
use serde_json::{json, Map, Value};

use super::config::{Account, PUBLIC_CLIENT, REALM};
use super::jwt::unix_secs;
use super::random::{random_uuid, stable_uuid};
use super::reply::Reply;
use super::state::State;

/// Keycloak's OAuth error body.
fn oauth_error(status: u16, error: &str, description: &str) -> Reply {
    Reply::json(
        status,
        json!({"error": error, "error_description": description}).to_string(),
    )
}

fn bad_client() -> Reply {
    oauth_error(
        401,
        "unauthorized_client",
        "Invalid client or Invalid client credentials",
    )
}

fn not_active() -> Reply {
    oauth_error(400, "invalid_grant", "Token is not active")
}

/// The client making the request, once authenticated.
enum Client<'a> {
    /// The public `shasta` client: no secret.
    Public,
    /// A confidential client that proved its secret.
    Confidential(&'a Account),
}

impl Client<'_> {
    fn id(&self) -> &str {
        match self {
            Client::Public => PUBLIC_CLIENT,
            Client::Confidential(a) => &a.name,
        }
    }
}

/// The form, with duplicate names refused as Keycloak does.
struct Form(Vec<(String, String)>);

impl Form {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }
}

/// `Authorization: Basic base64(id:secret)`, the other way to send client credentials.
fn basic_auth(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(rest.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let unescape = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Some((unescape(id), unescape(secret)))
}

/// What a token request ended as, for the counters.
pub(crate) enum Outcome {
    Password,
    Refresh,
    ClientCredentials,
    Failed,
}

/// Handles a token request that no fault replaced. `expired_access` makes the issued
/// access token already expired (the `ExpiredCredentials` fault on this endpoint).
pub(crate) fn token(
    state: &State,
    realm: &str,
    headers: &HeaderMap,
    body: &[u8],
    expired_access: bool,
) -> (Reply, Outcome) {
    match grant(state, realm, headers, body, expired_access) {
        Ok(ok) => ok,
        Err(reply) => (reply, Outcome::Failed),
    }
}

fn grant(
    state: &State,
    realm: &str,
    headers: &HeaderMap,
    body: &[u8],
    expired_access: bool,
) -> Result<(Reply, Outcome), Reply> {
    if realm != REALM {
        return Err(Reply::json(
            404,
            json!({"error": "Realm does not exist"}).to_string(),
        ));
    }
    let form_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if form_type != Some(true) {
        return Err(Reply::text(415, ""));
    }
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(body).into_owned().collect();
    for (i, (name, _)) in pairs.iter().enumerate() {
        if pairs[..i].iter().any(|(n, _)| n == name) {
            return Err(oauth_error(400, "invalid_request", "duplicated parameter"));
        }
    }
    let form = Form(pairs);
    let grant_type = form
        .get("grant_type")
        .ok_or_else(|| oauth_error(400, "invalid_request", "Missing form parameter: grant_type"))?;
    if !matches!(
        grant_type,
        "password" | "refresh_token" | "client_credentials"
    ) {
        return Err(oauth_error(
            400,
            "unsupported_grant_type",
            "Unsupported grant_type",
        ));
    }
    let client = authenticate_client(state, &form, headers)?;
    let issuer = Issuer {
        state,
        now: SystemTime::now(),
        expired_access,
    };
    match grant_type {
        "password" => password_grant(&issuer, &client, &form),
        "refresh_token" => refresh_grant(&issuer, &client, &form),
        _ => client_credentials_grant(&issuer, &client),
    }
}

fn authenticate_client<'a>(
    state: &'a State,
    form: &Form,
    headers: &HeaderMap,
) -> Result<Client<'a>, Reply> {
    let basic = basic_auth(headers);
    let (id, secret) = match &basic {
        Some((id, secret)) => (Some(id.as_str()), Some(secret.as_str())),
        None => (form.get("client_id"), form.get("client_secret")),
    };
    let Some(id) = id else {
        return Err(oauth_error(
            400,
            "invalid_client",
            "Missing parameter: client_id",
        ));
    };
    if let Some(account) = state.config.clients.iter().find(|c| c.name == id) {
        return match secret {
            Some(s) if account.secret.ct_eq(s.as_bytes()) => Ok(Client::Confidential(account)),
            _ => Err(bad_client()),
        };
    }
    if id == PUBLIC_CLIENT {
        Ok(Client::Public)
    } else {
        Err(bad_client())
    }
}

/// Issues tokens at one instant.
struct Issuer<'a> {
    state: &'a State,
    now: SystemTime,
    expired_access: bool,
}

/// Who a token is for.
struct Subject<'a> {
    sub: String,
    username: String,
    admin: bool,
    client: &'a str,
    session: Option<String>,
}

impl Issuer<'_> {
    fn exp(&self, lifetime: Duration) -> u64 {
        unix_secs(self.now + lifetime)
    }

    fn base_claims(&self, who: &Subject, typ: &str, exp: u64) -> Map<String, Value> {
        let mut c = Map::new();
        c.insert("exp".into(), exp.into());
        c.insert("iat".into(), unix_secs(self.now).into());
        c.insert("jti".into(), random_uuid().into());
        c.insert("iss".into(), self.state.issuer.clone().into());
        c.insert("sub".into(), who.sub.clone().into());
        c.insert("typ".into(), typ.into());
        c.insert("azp".into(), who.client.into());
        if let Some(sid) = &who.session {
            c.insert("session_state".into(), sid.clone().into());
            c.insert("sid".into(), sid.clone().into());
        }
        c.insert("scope".into(), "profile email".into());
        c
    }

    fn access_token(&self, who: &Subject) -> String {
        let exp = if self.expired_access {
            unix_secs(self.now).saturating_sub(3600)
        } else {
            self.exp(self.state.config.token_lifetime)
        };
        let mut c = self.base_claims(who, "Bearer", exp);
        c.insert("aud".into(), REALM.into());
        c.insert("preferred_username".into(), who.username.clone().into());
        c.insert("email_verified".into(), false.into());
        let mut access = Map::new();
        if who.admin {
            access.insert(REALM.into(), json!({"roles": ["admin"]}));
        }
        access.insert(
            "account".into(),
            json!({"roles": ["manage-account", "view-profile"]}),
        );
        c.insert("resource_access".into(), Value::Object(access));
        self.state.signer.sign(&Value::Object(c))
    }

    fn refresh_token(&self, who: &Subject, exp: u64) -> String {
        let mut c = self.base_claims(who, "Refresh", exp);
        c.insert("aud".into(), self.state.issuer.clone().into());
        self.state.signer.sign(&Value::Object(c))
    }

    /// Keycloak's token reply; a refresh token only for grants with a session.
    fn reply(&self, who: &Subject) -> Reply {
        let config = &self.state.config;
        let mut body = json!({
            "access_token": self.access_token(who),
            "expires_in": config.token_lifetime.as_secs(),
            "refresh_expires_in": 0,
            "token_type": "Bearer",
            "not-before-policy": 0,
            "scope": "profile email",
        });
        if let Some(sid) = &who.session {
            let exp = self.exp(config.refresh_lifetime);
            body["refresh_expires_in"] = config.refresh_lifetime.as_secs().into();
            body["refresh_token"] = self.refresh_token(who, exp).into();
            body["session_state"] = sid.clone().into();
        }
        Reply::json(200, body.to_string())
    }

    fn user_subject<'c>(&self, user: &Account, client: &'c str, session: String) -> Subject<'c> {
        Subject {
            sub: stable_uuid("user", &user.name),
            username: user.name.clone(),
            admin: user.admin,
            client,
            session: Some(session),
        }
    }
}

fn password_grant(
    issuer: &Issuer,
    client: &Client,
    form: &Form,
) -> Result<(Reply, Outcome), Reply> {
    if let Client::Confidential(_) = client {
        return Err(oauth_error(
            400,
            "unauthorized_client",
            "Client not allowed for direct access grants",
        ));
    }
    let missing = |p: &str| {
        oauth_error(
            400,
            "invalid_request",
            &format!("Missing form parameter: {p}"),
        )
    };
    let username = form.get("username").ok_or_else(|| missing("username"))?;
    let password = form.get("password").ok_or_else(|| missing("password"))?;
    let state = issuer.state;
    let user = state
        .config
        .users
        .iter()
        .find(|u| u.name == username)
        .filter(|u| u.secret.ct_eq(password.as_bytes()))
        .ok_or_else(|| oauth_error(401, "invalid_grant", "Invalid user credentials"))?;
    let expires = issuer.exp(state.config.refresh_lifetime);
    let session = state.new_session(&user.name, expires);
    let who = issuer.user_subject(user, client.id(), session);
    Ok((issuer.reply(&who), Outcome::Password))
}

fn refresh_grant(issuer: &Issuer, client: &Client, form: &Form) -> Result<(Reply, Outcome), Reply> {
    let state = issuer.state;
    let token = form
        .get("refresh_token")
        .ok_or_else(|| oauth_error(400, "invalid_request", "No refresh token"))?;
    let claims = state
        .signer
        .verify(token, issuer.now)
        .map_err(|_| not_active())?;
    if claims.get("typ").and_then(Value::as_str) != Some("Refresh") {
        return Err(oauth_error(400, "invalid_grant", "Invalid refresh token"));
    }
    if claims.get("azp").and_then(Value::as_str) != Some(client.id()) {
        return Err(oauth_error(
            400,
            "invalid_grant",
            "Invalid refresh token. Token client and authorized client don't match",
        ));
    }
    let sid = claims
        .get("sid")
        .and_then(Value::as_str)
        .ok_or_else(not_active)?;
    let expires = issuer.exp(state.config.refresh_lifetime);
    let user_name = state.refresh_session(sid, expires).ok_or_else(not_active)?;
    let user = state
        .config
        .users
        .iter()
        .find(|u| u.name == user_name)
        .ok_or_else(not_active)?;
    let who = issuer.user_subject(user, client.id(), sid.to_owned());
    Ok((issuer.reply(&who), Outcome::Refresh))
}

fn client_credentials_grant(issuer: &Issuer, client: &Client) -> Result<(Reply, Outcome), Reply> {
    let Client::Confidential(account) = client else {
        return Err(oauth_error(
            401,
            "unauthorized_client",
            "Public client not allowed to retrieve service account",
        ));
    };
    let who = Subject {
        sub: stable_uuid("client", &account.name),
        username: format!("service-account-{}", account.name),
        admin: account.admin,
        client: &account.name,
        session: None,
    };
    Ok((issuer.reply(&who), Outcome::ClientCredentials))
}
