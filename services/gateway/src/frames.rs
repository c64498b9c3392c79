//! Client frames to whole messages, without sockets: continuation frames are joined up to the
//! message size limit (RFC 6455 §5.4) and a text message must be UTF-8 once whole. Going over the
//! limit is an error the moment it happens, whatever the fragmentation, so a client can never
//! make the gateway hold more than one message's worth; each failure has its own close code.

use actix_ws::{AggregatedMessage, Item, Message, ProtocolError};
use bytes::{Bytes, BytesMut};
use bytestring::ByteString;

/// Why a client's frames end its connection.
#[derive(Debug)]
pub enum FrameError {
    /// A message (all its fragments) over the limit: close 1009.
    TooBig,
    /// A text message that is not UTF-8: close 1007.
    InvalidUtf8,
    /// Anything else RFC 6455 forbids (a bad opcode, an unmasked frame, a fragment out of
    /// place): close 1002.
    Protocol(String),
    /// The connection broke (reset, closed without a close frame): the client may come back.
    Lost(std::io::Error),
}

/// Joins fragmented messages for one connection.
pub struct Reassembler {
    limit: usize,
    /// The message being received in fragments: whether it is text, and its bytes so far.
    partial: Option<(bool, BytesMut)>,
}

impl Reassembler {
    pub fn new(limit: usize) -> Self {
        Self { limit, partial: None }
    }

    /// Takes the next frame read from the client; `Ok(None)` while a fragmented message is
    /// still incomplete.
    pub fn push(&mut self, frame: Result<Message, ProtocolError>) -> Result<Option<AggregatedMessage>, FrameError> {
        let message = match frame {
            Ok(Message::Text(text)) if self.partial.is_none() => AggregatedMessage::Text(text),
            Ok(Message::Binary(bytes)) if self.partial.is_none() => AggregatedMessage::Binary(bytes),
            Ok(Message::Text(_) | Message::Binary(_)) => {
                return Err(FrameError::Protocol("a new message inside a fragmented one".into()));
            }
            Ok(Message::Continuation(item)) => return self.fragment(item),
            Ok(Message::Ping(bytes)) => AggregatedMessage::Ping(bytes),
            Ok(Message::Pong(bytes)) => AggregatedMessage::Pong(bytes),
            Ok(Message::Close(reason)) => AggregatedMessage::Close(reason),
            Ok(Message::Nop) => return Ok(None),
            Err(ProtocolError::Overflow) => return Err(FrameError::TooBig),
            Err(ProtocolError::Io(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
                return Err(FrameError::InvalidUtf8);
            }
            Err(ProtocolError::Io(e)) => return Err(FrameError::Lost(e)),
            Err(e) => return Err(FrameError::Protocol(e.to_string())),
        };
        Ok(Some(message))
    }

    fn fragment(&mut self, item: Item) -> Result<Option<AggregatedMessage>, FrameError> {
        let (bytes, last) = match item {
            Item::FirstText(bytes) | Item::FirstBinary(bytes) if self.partial.is_some() => {
                return Err(FrameError::Protocol(format!("a new message inside a fragmented one: {}", bytes.len())));
            }
            Item::FirstText(bytes) => {
                self.partial = Some((true, BytesMut::new()));
                (bytes, false)
            }
            Item::FirstBinary(bytes) => {
                self.partial = Some((false, BytesMut::new()));
                (bytes, false)
            }
            Item::Continue(bytes) => (bytes, false),
            Item::Last(bytes) => (bytes, true),
        };
        let Some((_, buffer)) = self.partial.as_mut() else {
            return Err(FrameError::Protocol("a continuation frame with no message to continue".into()));
        };
        if buffer.len() + bytes.len() > self.limit {
            self.partial = None;
            return Err(FrameError::TooBig);
        }
        buffer.extend_from_slice(&bytes);
        if !last {
            return Ok(None);
        }
        let (text, buffer) = self.partial.take().expect("checked above");
        let whole: Bytes = buffer.freeze();
        if !text {
            return Ok(Some(AggregatedMessage::Binary(whole)));
        }
        ByteString::try_from(whole).map(|text| Some(AggregatedMessage::Text(text))).map_err(|_| FrameError::InvalidUtf8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(message: Option<AggregatedMessage>) -> String {
        match message {
            Some(AggregatedMessage::Text(text)) => text.to_string(),
            other => panic!("expected a text message, got {other:?}"),
        }
    }

    fn continuation(item: Item) -> Result<Message, ProtocolError> {
        Ok(Message::Continuation(item))
    }

    #[test]
    fn fragments_are_joined_into_one_message_with_control_frames_in_between() {
        let mut frames = Reassembler::new(16);
        assert!(matches!(frames.push(continuation(Item::FirstText(Bytes::from_static(b"{\"by")))), Ok(None)));
        assert!(matches!(frames.push(Ok(Message::Ping(Bytes::new()))), Ok(Some(AggregatedMessage::Ping(_)))));
        assert!(matches!(frames.push(continuation(Item::Continue(Bytes::from_static(b"e\": ")))), Ok(None)));
        assert_eq!(text(frames.push(continuation(Item::Last(Bytes::from_static(b"{}}")))).unwrap()), r#"{"bye": {}}"#);
        assert_eq!(text(frames.push(Ok(Message::Text("next".into()))).unwrap()), "next");
    }

    #[test]
    fn a_message_is_too_big_at_the_fragment_that_crosses_the_limit() {
        let mut frames = Reassembler::new(10);
        assert!(matches!(frames.push(continuation(Item::FirstText(Bytes::from(vec![b'x'; 6])))), Ok(None)));
        assert!(matches!(
            frames.push(continuation(Item::Continue(Bytes::from(vec![b'x'; 5])))),
            Err(FrameError::TooBig)
        ));
        assert!(
            matches!(frames.push(Err(ProtocolError::Overflow)), Err(FrameError::TooBig)),
            "one frame over the limit"
        );
        let mut exact = Reassembler::new(10);
        assert!(matches!(exact.push(continuation(Item::FirstText(Bytes::from(vec![b'x'; 6])))), Ok(None)));
        assert_eq!(text(exact.push(continuation(Item::Last(Bytes::from(vec![b'x'; 4])))).unwrap()).len(), 10);
    }

    #[test]
    fn text_that_is_not_utf8_once_whole_is_refused() {
        let mut frames = Reassembler::new(16);
        // "é" split across two fragments is fine; a lone continuation byte is not.
        assert!(matches!(frames.push(continuation(Item::FirstText(Bytes::from_static(b"\xc3")))), Ok(None)));
        assert_eq!(text(frames.push(continuation(Item::Last(Bytes::from_static(b"\xa9")))).unwrap()), "é");
        assert!(matches!(frames.push(continuation(Item::FirstText(Bytes::from_static(b"\xa9")))), Ok(None)));
        assert!(matches!(frames.push(continuation(Item::Last(Bytes::new()))), Err(FrameError::InvalidUtf8)));
        let unreadable = std::io::Error::new(std::io::ErrorKind::InvalidData, "invalid utf-8");
        assert!(matches!(frames.push(Err(ProtocolError::Io(unreadable))), Err(FrameError::InvalidUtf8)));
    }

    #[test]
    fn fragments_out_of_place_are_protocol_errors() {
        let stray = [Item::Continue(Bytes::new()), Item::Last(Bytes::new())];
        for item in stray {
            assert!(matches!(Reassembler::new(16).push(continuation(item)), Err(FrameError::Protocol(_))));
        }
        let mut frames = Reassembler::new(16);
        assert!(matches!(frames.push(continuation(Item::FirstBinary(Bytes::new()))), Ok(None)));
        assert!(matches!(frames.push(Ok(Message::Text("x".into()))), Err(FrameError::Protocol(_))));
        assert!(matches!(frames.push(continuation(Item::FirstText(Bytes::new()))), Err(FrameError::Protocol(_))));
    }
}
