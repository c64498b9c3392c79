//! Just enough of the API: accounts, rooms, and the recorder's metrics page.

use anyhow::{Context, bail};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::recorder::Route;

/// Accounts and rooms: participant i is a member of room i / room_size, whose first member
/// owns it (and starts and stops its recordings).
pub struct Fixture {
    /// Access tokens, one per participant.
    pub tokens: Vec<String>,
    pub rooms: Vec<String>,
    pub room_size: usize,
}

impl Fixture {
    pub async fn build(
        api: &Api,
        participants: usize,
        room_size: usize,
        run_id: &str,
        route: Route,
    ) -> anyhow::Result<Self> {
        let password = format!("record-load-{run_id}-password");
        let tokens: Vec<String> = futures_util::stream::iter(0..participants)
            .map(|index| account(api, run_id, index, &password))
            .buffered(4)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<anyhow::Result<_>>()?;
        let mut rooms = Vec::new();
        for (number, members) in tokens.chunks(room_size).enumerate() {
            let owner = &members[0];
            let name = format!("record-load {run_id} {} {number}", route.target());
            let body = json!({"name": name, "max_participants": room_size.max(2), "media": route.media()});
            let room = api.call("create a room", "POST", "/v1/rooms", Some(owner.as_str()), Some(body)).await?;
            let room_id = room["id"].as_str().context("a room without id")?.to_owned();
            if members.len() > 1 {
                let path = format!("/v1/rooms/{room_id}/invites");
                let body = json!({"max_uses": members.len() - 1});
                let invite = api.call("create an invite", "POST", &path, Some(owner.as_str()), Some(body)).await?;
                let secret = invite["token"].as_str().context("an invite without token")?;
                for member in &members[1..] {
                    api.call(
                        "accept an invite",
                        "POST",
                        &format!("/v1/invites/{secret}/accept"),
                        Some(member.as_str()),
                        None,
                    )
                    .await?;
                }
            }
            rooms.push(room_id);
        }
        Ok(Self { tokens, rooms, room_size })
    }
}

/// Signs up (unless a run with the same id did) and logs in; the access token.
pub async fn account(api: &Api, run_id: &str, index: usize, password: &str) -> anyhow::Result<String> {
    let email = format!("record-load-{run_id}-{index}@example.com");
    let signup = json!({"email": email, "password": password, "display_name": format!("Participant {index}")});
    let (status, _) = api.request("POST", "/v1/auth/signup", None, Some(&signup)).await?;
    if status != 201 && status != 409 {
        bail!("sign-up: HTTP {status}");
    }
    let login = json!({"email": email, "password": password});
    let session = api.call("log in", "POST", "/v1/auth/login", None, Some(login)).await?;
    Ok(session["access_token"].as_str().context("a login without access token")?.to_owned())
}

/// Just enough HTTP/1.1 for the API on this machine: one connection per request, the whole
/// response read into memory.
pub struct Api {
    pub addr: String,
}

impl Api {
    pub fn new(base: &str) -> anyhow::Result<Self> {
        let addr = base.strip_prefix("http://").context("--api must be an http:// URL")?.trim_end_matches('/');
        Ok(Self { addr: addr.to_owned() })
    }

    pub async fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> anyhow::Result<(u16, Vec<u8>)> {
        let mut stream =
            TcpStream::connect(&self.addr).await.with_context(|| format!("connecting to {}", self.addr))?;
        let body = body.map(Value::to_string).unwrap_or_default();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.addr,
            body.len()
        );
        if !body.is_empty() {
            head.push_str("Content-Type: application/json\r\n");
        }
        if let Some(token) = token {
            head.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body.as_bytes()).await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        parse_response(&response)
    }

    /// A JSON request that must succeed. `what` names it in errors, which never show the path
    /// (it may hold an invite secret).
    pub async fn call(
        &self,
        what: &str,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let (status, bytes) = self.request(method, path, token, body.as_ref()).await.context(what.to_owned())?;
        let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if !(200..300).contains(&status) {
            bail!("{what}: HTTP {status} {}", value["error"]["code"]);
        }
        Ok(value)
    }
}

pub fn parse_response(raw: &[u8]) -> anyhow::Result<(u16, Vec<u8>)> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").context("a truncated HTTP response")?;
    let head = std::str::from_utf8(&raw[..end])?.to_ascii_lowercase();
    let status =
        head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).context("an HTTP response without status")?;
    let chunked = head.lines().any(|line| line.starts_with("transfer-encoding:") && line.contains("chunked"));
    let body = &raw[end + 4..];
    Ok((status, if chunked { dechunk(body)? } else { body.to_vec() }))
}

pub fn dechunk(mut body: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n").context("a truncated chunk")?;
        let size = std::str::from_utf8(&body[..line_end])?.split(';').next().unwrap_or_default().trim().to_owned();
        let size = usize::from_str_radix(&size, 16)?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(body.get(..size).context("a truncated chunk")?);
        body = body.get(size + 2..).context("a truncated chunk")?;
    }
}

/// The `recorder_*` samples of a Prometheus text page (empty without a URL or on failure).
pub async fn scrape_metrics(url: Option<&str>) -> Vec<(String, f64)> {
    let Some(url) = url else { return Vec::new() };
    let Some((base, path)) = url.strip_prefix("http://").and_then(|rest| rest.split_once('/')) else {
        return Vec::new();
    };
    let api = Api { addr: base.to_owned() };
    let Ok((200, body)) = api.request("GET", &format!("/{path}"), None, None).await else { return Vec::new() };
    String::from_utf8_lossy(&body)
        .lines()
        .filter(|line| line.starts_with("recorder_") && !line.contains("_bucket"))
        .filter_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            Some((name.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// `name +delta` for every counter that moved, and the gauges' latest values.
pub fn metrics_delta(before: &[(String, f64)], after: &[(String, f64)]) -> String {
    let moved: Vec<String> = after
        .iter()
        .filter_map(|(name, value)| {
            let old = before.iter().find(|(n, _)| n == name).map_or(0.0, |(_, v)| *v);
            (value - old != 0.0).then(|| format!("{name} {:+}", value - old))
        })
        .collect();
    if moved.is_empty() { "no change".into() } else { moved.join(", ") }
}
