//! The binary-protocol session rules, with no I/O and no clock.
//!
//! A connection must start with `Hello` carrying [`PROTOCOL_VERSION`]; a different version is
//! answered with `UNSUPPORTED_VERSION` and the connection is closed. Anything before the hello
//! gets `HELLO_REQUIRED` and a close. Frames only a broker sends (acks, results) are answered
//! with `UNEXPECTED_FRAME`. The connection task asks [`Session::admit`] about every frame and
//! does what the returned [`Gate`] says.
//!
//! When the broker requires a login, after the hello only `Authenticate` and `Ping` are served
//! until a login succeeded ([`Session::logged_in`]); everything else gets `NOT_AUTHORIZED` and
//! the connection stays open. A failed login leaves it so; after [`MAX_FAILED_LOGINS`] failures
//! the connection is closed. A second `Authenticate` after a successful one is refused.
//! Whether a logged-in client may do a request is the ACL's question, not this module's.

use outpost_firmware::{ErrorCode, Frame, PROTOCOL_VERSION};

/// Failed `Authenticate` attempts after which a connection is closed.
pub const MAX_FAILED_LOGINS: u32 = 3;

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
    /// Check the login; report with [`Session::logged_in`] or [`Session::login_failed`].
    Authenticate,
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
    /// Requests other than `Authenticate` and `Ping` wait for a login.
    login_required: bool,
    logged_in: bool,
    failed_logins: u32,
}

impl Default for Session {
    fn default() -> Self {
        Self::new(false)
    }
}

impl Session {
    /// A session waiting for its hello; `login_required` when anonymous access is off.
    pub fn new(login_required: bool) -> Self {
        Self {
            state: State::AwaitHello,
            client_id: String::new(),
            login_required,
            logged_in: false,
            failed_logins: 0,
        }
    }

    /// A login succeeded.
    pub fn logged_in(&mut self) {
        self.logged_in = true;
    }

    /// A login failed; true when the connection is to be closed now.
    pub fn login_failed(&mut self) -> bool {
        self.failed_logins += 1;
        self.failed_logins >= MAX_FAILED_LOGINS
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
            (State::Ready, Frame::Authenticate { .. }) if self.logged_in => {
                refuse(ErrorCode::UNEXPECTED_FRAME, "already logged in", false)
            }
            (State::Ready, Frame::Authenticate { .. }) => Gate::Authenticate,
            (State::Ready, Frame::Ping { .. }) => Gate::Serve,
            (State::Ready, _) if self.login_required && !self.logged_in => refuse(
                ErrorCode::NOT_AUTHORIZED,
                "log in first: this broker requires a user name and password (Authenticate)",
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
    fn login_gates_requests_when_required() {
        let mut s = Session::new(true);
        let hello = Frame::Hello {
            version: PROTOCOL_VERSION,
            client_id: "dev-1",
        };
        assert_eq!(s.admit(&hello), Gate::Welcome);
        assert_eq!(s.admit(&Frame::Ping { request_id: 1 }), Gate::Serve);
        let list = Frame::ListTopics { request_id: 2 };
        assert!(matches!(
            s.admit(&list),
            Gate::Refuse {
                code: ErrorCode::NOT_AUTHORIZED,
                close: false,
                ..
            }
        ));
        let login = Frame::Authenticate {
            request_id: 3,
            username: "u",
            password: b"p",
        };
        assert_eq!(s.admit(&login), Gate::Authenticate);
        assert!(!s.login_failed());
        assert_eq!(s.admit(&login), Gate::Authenticate);
        s.logged_in();
        assert_eq!(s.admit(&list), Gate::Serve);
        assert!(matches!(
            s.admit(&login),
            Gate::Refuse {
                code: ErrorCode::UNEXPECTED_FRAME,
                ..
            }
        ));
        let mut t = Session::new(true);
        assert!(!t.login_failed() && !t.login_failed() && t.login_failed());
        // Without a required login, a login is still possible (to be a user for the ACL).
        let mut open = Session::new(false);
        assert_eq!(open.admit(&hello), Gate::Welcome);
        assert_eq!(open.admit(&list), Gate::Serve);
        assert_eq!(open.admit(&login), Gate::Authenticate);
    }

    #[test]
    fn hello_first_then_requests() {
        let mut s = Session::new(false);
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
        let mut s = Session::new(false);
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
        let mut s = Session::new(false);
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
