//! The rules of one connection, without sockets or clocks: decoding a client frame into a
//! command (or a protocol error that is answered and survived), and the message-rate limit.

use std::time::Instant;

use confab_protocol::signal::{ClientMessage, Error, ServerMessage, client_message::Kind, server_message};

/// A client frame the gateway could not accept; answered with an `error` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError {
    pub code: &'static str,
    pub message: String,
}

impl ProtocolError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }

    pub fn to_message(&self) -> ServerMessage {
        ServerMessage {
            kind: Some(server_message::Kind::Error(Error {
                code: self.code.to_owned(),
                message: self.message.clone(),
            })),
        }
    }
}

/// Decodes one text frame.
pub fn decode(text: &str) -> Result<Kind, ProtocolError> {
    let message: ClientMessage =
        serde_json::from_str(text).map_err(|e| ProtocolError::new("malformed_message", e.to_string()))?;
    message.kind.ok_or_else(|| ProtocolError::new("malformed_message", "a message needs exactly one type"))
}

/// A token bucket: `rate` messages a second on average, bursts up to `burst`.
pub struct RateLimit {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
    /// Recent refusals; decays at `rate` a second, so only a sustained flood reaches the limit.
    strikes: f64,
}

/// What the limiter says about one message.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// Drop it and tell the client.
    Refuse,
    /// The client keeps flooding: close the connection.
    Disconnect,
}

impl RateLimit {
    /// Recent refusals after which the client is disconnected.
    pub const MAX_REFUSED: f64 = 50.0;

    pub fn new(rate: f64, burst: f64, now: Instant) -> Self {
        Self { rate, burst, tokens: burst, last: now, strikes: 0.0 }
    }

    pub fn check(&mut self, now: Instant) -> Verdict {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.strikes = (self.strikes - elapsed * self.rate).max(0.0);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Verdict::Allow
        } else {
            self.strikes += 1.0;
            if self.strikes > Self::MAX_REFUSED { Verdict::Disconnect } else { Verdict::Refuse }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn frames_decode_to_commands_or_named_errors() {
        assert!(matches!(
            decode(r#"{"signal": {"to": "p1", "sdp": {"type": "offer", "sdp": "v=0"}}}"#),
            Ok(Kind::Signal(_))
        ));
        assert!(matches!(decode(r#"{"bye": {}}"#), Ok(Kind::Bye(_))));
        for bad in ["", "{", "[]", "{}", r#"{"welcome": {}}"#, r#"{"signal": "x"}"#, "\u{0}"] {
            assert_eq!(decode(bad).unwrap_err().code, "malformed_message", "{bad:?}");
        }
    }

    #[test]
    fn the_bucket_allows_a_burst_then_the_rate_then_disconnects_a_flood() {
        let start = Instant::now();
        let mut limit = RateLimit::new(20.0, 50.0, start);
        for _ in 0..50 {
            assert_eq!(limit.check(start), Verdict::Allow);
        }
        assert_eq!(limit.check(start), Verdict::Refuse);
        assert_eq!(limit.check(start + Duration::from_millis(50)), Verdict::Allow, "one token per 50 ms");
        for _ in 0..50 {
            assert_eq!(limit.check(start + Duration::from_millis(50)), Verdict::Refuse);
        }
        assert_eq!(limit.check(start + Duration::from_millis(50)), Verdict::Disconnect);
    }

    #[test]
    fn a_client_a_little_over_the_rate_is_disconnected_only_if_it_keeps_it_up() {
        let start = Instant::now();
        let mut limit = RateLimit::new(20.0, 50.0, start);
        let mut at = start;
        let mut verdicts = Vec::new();
        // 30 messages a second against a rate of 20.
        for _ in 0..300 {
            at += Duration::from_micros(33_333);
            verdicts.push(limit.check(at));
        }
        let first_disconnect = verdicts.iter().position(|v| *v == Verdict::Disconnect);
        assert!(first_disconnect.is_none(), "10 surplus messages a second decay as fast as they come");
    }

    #[test]
    fn a_quiet_client_is_never_limited() {
        let start = Instant::now();
        let mut limit = RateLimit::new(20.0, 50.0, start);
        for i in 0..1000 {
            assert_eq!(limit.check(start + Duration::from_millis(60 * i)), Verdict::Allow);
        }
    }
}
