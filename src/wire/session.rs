//! The binary-protocol session rules, with no I/O and no clock.
//!
//! A connection must start with `Hello` carrying [`PROTOCOL_VERSION`]; a different version is
//! answered with `UNSUPPORTED_VERSION` and the connection is closed. Anything before the hello
//! gets `HELLO_REQUIRED` and a close. Frames only a broker sends (acks, results) are answered
//! with `UNEXPECTED_FRAME`. The connection task asks [`Session::admit`] about every frame and
//! does what the returned [`Gate`] says.

use outpost_firmware::{ErrorCode, Frame, PROTOCOL_VERSION};

/// Where a session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Waiting for `Hello`.
    AwaitHello,
    /// Hello done; requests are served.
    Ready,
}

/// What to do with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Answer the hello with `HelloAck`.
    Welcome,
    /// Serve the request.
    Serve,
    /// Answer with an error frame; close the connection after it when `close`.
    Refuse {
        /// Error code.
        code: ErrorCode,
        /// Human-readable reason.
        message: &'static str,
        /// Close after sending.
        close: bool,
    },
}

/// One connection's protocol state.
#[derive(Debug, Clone)]
pub struct Session {
    state: State,
    client_id: String,
}

impl Default for Session {
    fn default() -> Self {
        Self::new()
    }
}

impl Session {
    /// A session waiting for its hello.
    pub fn new() -> Self {
        Self {
            state: State::AwaitHello,
            client_id: String::new(),
        }
    }

    /// Current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Client id given in the hello (empty before).
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// Decides what to do with `frame` and advances the state.
    pub fn admit(&mut self, frame: &Frame<'_>) -> Gate {
        match (self.state, frame) {
            (State::AwaitHello, Frame::Hello { version, client_id }) => {
                if *version != PROTOCOL_VERSION {
                    return refuse(
                        ErrorCode::UNSUPPORTED_VERSION,
                        "unsupported protocol version: this broker speaks version 1",
                        true,
                    );
                }
                self.client_id = (*client_id).to_owned();
                self.state = State::Ready;
                Gate::Welcome
            }
            (State::AwaitHello, _) => refuse(ErrorCode::HELLO_REQUIRED, "send Hello first", true),
            (State::Ready, Frame::Hello { .. }) => {
                refuse(ErrorCode::UNEXPECTED_FRAME, "hello already done", false)
            }
            (State::Ready, f) if is_broker_frame(f) => refuse(
                ErrorCode::UNEXPECTED_FRAME,
                "this frame is sent by brokers, not clients",
                false,
            ),
            (State::Ready, _) => Gate::Serve,
        }
    }
}

fn refuse(code: ErrorCode, message: &'static str, close: bool) -> Gate {
    Gate::Refuse {
        code,
        message,
        close,
    }
}

/// Frames only a broker sends.
fn is_broker_frame(frame: &Frame<'_>) -> bool {
    matches!(
        frame,
        Frame::HelloAck { .. }
            | Frame::Ack { .. }
            | Frame::Error { .. }
            | Frame::OffsetOutOfRange { .. }
            | Frame::FetchResult { .. }
            | Frame::OffsetResult { .. }
            | Frame::TopicList { .. }
            | Frame::TopicInfo { .. }
            | Frame::Done { .. }
            | Frame::Pong { .. }
            | Frame::BridgeStatusReply { .. }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_first_then_requests() {
        let mut s = Session::new();
        let ping = Frame::Ping { request_id: 1 };
        assert!(matches!(
            s.admit(&ping),
            Gate::Refuse {
                code: ErrorCode::HELLO_REQUIRED,
                close: true,
                ..
            }
        ));
        let hello = Frame::Hello {
            version: PROTOCOL_VERSION,
            client_id: "dev-1",
        };
        assert_eq!(s.admit(&hello), Gate::Welcome);
        assert_eq!(s.client_id(), "dev-1");
        assert_eq!(s.admit(&ping), Gate::Serve);
        assert!(matches!(s.admit(&hello), Gate::Refuse { close: false, .. }));
        let pong = Frame::Pong { request_id: 1 };
        assert!(matches!(
            s.admit(&pong),
            Gate::Refuse {
                code: ErrorCode::UNEXPECTED_FRAME,
                ..
            }
        ));
    }

    #[test]
    fn bridge_status_is_a_request_and_its_reply_is_not() {
        let mut s = Session::new();
        let hello = Frame::Hello {
            version: PROTOCOL_VERSION,
            client_id: "cli",
        };
        assert_eq!(s.admit(&hello), Gate::Welcome);
        assert_eq!(s.admit(&Frame::BridgeStatus { request_id: 2 }), Gate::Serve);
        let reply = Frame::BridgeStatusReply {
            request_id: 2,
            json: "[]",
        };
        assert!(matches!(
            s.admit(&reply),
            Gate::Refuse {
                code: ErrorCode::UNEXPECTED_FRAME,
                close: false,
                ..
            }
        ));
    }

    #[test]
    fn wrong_version_closes() {
        let mut s = Session::new();
        let hello = Frame::Hello {
            version: PROTOCOL_VERSION + 1,
            client_id: "x",
        };
        assert!(matches!(
            s.admit(&hello),
            Gate::Refuse {
                code: ErrorCode::UNSUPPORTED_VERSION,
                close: true,
                ..
            }
        ));
        assert_eq!(s.state(), State::AwaitHello);
    }
}
