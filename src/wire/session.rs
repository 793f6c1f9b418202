//! The binary-protocol session rules, with no I/O and no clock.
//!
//! A connection must start with `Hello` (a client) or `DeviceHello` (a sensor) carrying
//! [`PROTOCOL_VERSION`]; a different version is answered with `UNSUPPORTED_VERSION` and the
//! connection is closed, as is a `DeviceHello` whose device id is not a valid id
//! (`INVALID_REQUEST`). Anything before the hello gets `HELLO_REQUIRED` and a close. Frames
//! only a broker sends (acks, results, `DeviceHelloAck`, `ConfigReply`, `DevicesReply`) and
//! `Datagram` (a UDP frame) are answered with `UNEXPECTED_FRAME`. The connection task asks
//! [`Session::admit`] about every frame and does what the returned [`Gate`] says.
//!
//! A `DeviceHello` is settled in two steps: [`Session::admit`] checks the version and the id
//! ([`Gate::CheckDevice`]); the connection asks the device registry about the token and
//! reports the answer to [`Session::device_checked`], which decides: a verified token logs
//! the device in; a device without a token is let in only where no login is required; a
//! wrong token, or a missing one where a login is required, is `NOT_AUTHORIZED` and a close.
//! `ConfigRequest` and `Sleep` belong to device sessions (`UNEXPECTED_FRAME` elsewhere), and a
//! device, authenticated by its token, sends no `Authenticate`.
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

/// What kind of peer a session serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerKind {
    /// A client that said `Hello` (a tool, an application, a sensor without a device id).
    Client,
    /// A sensor that said `DeviceHello` and was let in.
    Device,
}

/// What the device registry said of the token a `DeviceHello` presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceToken {
    /// The device has a token and this is it.
    Verified,
    /// The device has no token set.
    Missing,
    /// The device has a token and this is not it.
    Wrong,
}

/// What to do with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Answer the hello with `HelloAck`.
    Welcome,
    /// Check the `DeviceHello`'s token and report with [`Session::device_checked`].
    CheckDevice,
    /// Answer the `DeviceHello` with `DeviceHelloAck` (the device is in).
    WelcomeDevice,
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
    peer: PeerKind,
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
            peer: PeerKind::Client,
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

    /// Client id given in the hello, or the device id of a `DeviceHello` (empty before).
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// Whether this is a client or a device session.
    pub fn peer(&self) -> PeerKind {
        self.peer
    }

    /// Settles a `DeviceHello` ([`Gate::CheckDevice`]) with what the registry said of its
    /// token: [`Gate::WelcomeDevice`] (the session is then ready, a device session, logged in
    /// when the token was verified) or a refusal that closes the connection.
    pub fn device_checked(&mut self, token: DeviceToken) -> Gate {
        match token {
            DeviceToken::Wrong => {
                return refuse(ErrorCode::NOT_AUTHORIZED, "wrong device token", true)
            }
            DeviceToken::Missing if self.login_required => {
                return refuse(
                    ErrorCode::NOT_AUTHORIZED,
                    // Short: a device's receive buffer is small; the operator's hint
                    // (`outpost devices token`) is in the broker's log line.
                    "device has no token; this broker requires one",
                    true,
                );
            }
            DeviceToken::Missing => {}
            DeviceToken::Verified => self.logged_in = true,
        }
        self.state = State::Ready;
        self.peer = PeerKind::Device;
        Gate::WelcomeDevice
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
            (
                State::AwaitHello,
                Frame::DeviceHello {
                    version, device_id, ..
                },
            ) => {
                if *version != PROTOCOL_VERSION {
                    return refuse(
                        ErrorCode::UNSUPPORTED_VERSION,
                        "unsupported protocol version: this broker speaks version 1",
                        true,
                    );
                }
                if crate::devices::validate_id(device_id).is_err() {
                    return refuse(
                        ErrorCode::INVALID_REQUEST,
                        "invalid device id: use 1..=32 characters of [a-zA-Z0-9._-]",
                        true,
                    );
                }
                self.client_id = (*device_id).to_owned();
                Gate::CheckDevice
            }
            (State::AwaitHello, _) => refuse(ErrorCode::HELLO_REQUIRED, "send Hello first", true),
            (State::Ready, Frame::Hello { .. } | Frame::DeviceHello { .. }) => {
                refuse(ErrorCode::UNEXPECTED_FRAME, "hello already done", false)
            }
            (State::Ready, f) if is_broker_frame(f) => refuse(
                ErrorCode::UNEXPECTED_FRAME,
                "this frame is sent by brokers, not clients",
                false,
            ),
            (State::Ready, Frame::Datagram { .. }) => refuse(
                ErrorCode::UNEXPECTED_FRAME,
                "Datagram frames are for the UDP listener; on TCP send the request itself",
                false,
            ),
            (State::Ready, Frame::ConfigRequest { .. } | Frame::Sleep { .. })
                if self.peer != PeerKind::Device =>
            {
                refuse(
                    ErrorCode::UNEXPECTED_FRAME,
                    "ConfigRequest and Sleep are for device sessions (start with DeviceHello)",
                    false,
                )
            }
            (State::Ready, Frame::Authenticate { .. }) if self.peer == PeerKind::Device => refuse(
                ErrorCode::UNEXPECTED_FRAME,
                "a device is authenticated by the token in its DeviceHello",
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
            | Frame::DeviceHelloAck { .. }
            | Frame::ConfigReply { .. }
            | Frame::DevicesReply { .. }
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

    fn device_hello(id: &str) -> Frame<'_> {
        Frame::DeviceHello {
            version: PROTOCOL_VERSION,
            device_id: id,
            token: b"t",
            config_version: None,
        }
    }

    fn refusal(gate: Gate) -> (ErrorCode, bool) {
        match gate {
            Gate::Refuse { code, close, .. } => (code, close),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn device_hello_is_settled_by_the_token() {
        // A verified token logs the device in even where a login is required.
        let mut s = Session::new(true);
        assert_eq!(s.admit(&device_hello("d1")), Gate::CheckDevice);
        assert_eq!(s.state(), State::AwaitHello);
        assert_eq!(s.device_checked(DeviceToken::Verified), Gate::WelcomeDevice);
        assert_eq!(
            (s.state(), s.peer(), s.client_id()),
            (State::Ready, PeerKind::Device, "d1")
        );
        assert_eq!(s.admit(&Frame::ListTopics { request_id: 1 }), Gate::Serve);
        // No token: refused where a login is required, let in elsewhere.
        let mut s = Session::new(true);
        s.admit(&device_hello("d1"));
        let (code, close) = refusal(s.device_checked(DeviceToken::Missing));
        assert_eq!((code, close), (ErrorCode::NOT_AUTHORIZED, true));
        let mut s = Session::new(false);
        s.admit(&device_hello("d1"));
        assert_eq!(s.device_checked(DeviceToken::Missing), Gate::WelcomeDevice);
        // A wrong token closes, login required or not.
        let mut s = Session::new(false);
        s.admit(&device_hello("d1"));
        let (code, close) = refusal(s.device_checked(DeviceToken::Wrong));
        assert_eq!((code, close), (ErrorCode::NOT_AUTHORIZED, true));
        assert_eq!(s.state(), State::AwaitHello);
    }

    #[test]
    fn device_hello_checks_version_and_id() {
        let mut s = Session::new(false);
        let old = Frame::DeviceHello {
            version: PROTOCOL_VERSION + 1,
            device_id: "d1",
            token: b"",
            config_version: Some(1),
        };
        assert_eq!(
            refusal(s.admit(&old)),
            (ErrorCode::UNSUPPORTED_VERSION, true)
        );
        for bad in ["", "a b", "d/1", &"x".repeat(33)] {
            let (code, close) = refusal(Session::new(false).admit(&device_hello(bad)));
            assert_eq!((code, close), (ErrorCode::INVALID_REQUEST, true), "{bad:?}");
        }
    }

    #[test]
    fn device_frames_belong_to_device_sessions() {
        let config = Frame::ConfigRequest { request_id: 1 };
        let sleep = Frame::Sleep {
            request_id: 2,
            duration_ms: 10,
        };
        let datagram = Frame::Datagram {
            device_id: "d1",
            token: b"",
            body: b"",
        };
        let login = Frame::Authenticate {
            request_id: 3,
            username: "u",
            password: b"p",
        };
        let mut client = Session::new(false);
        client.admit(&Frame::Hello {
            version: PROTOCOL_VERSION,
            client_id: "c",
        });
        for f in [&config, &sleep, &datagram] {
            assert_eq!(
                refusal(client.admit(f)),
                (ErrorCode::UNEXPECTED_FRAME, false)
            );
        }
        let mut device = Session::new(false);
        device.admit(&device_hello("d1"));
        device.device_checked(DeviceToken::Missing);
        assert_eq!(device.admit(&config), Gate::Serve);
        assert_eq!(device.admit(&sleep), Gate::Serve);
        for f in [&datagram, &login, &device_hello("d1")] {
            assert_eq!(
                refusal(device.admit(f)),
                (ErrorCode::UNEXPECTED_FRAME, false)
            );
        }
        // Aliases are for every session.
        let register = Frame::RegisterAlias {
            request_id: 4,
            alias: 1,
            topic: "t",
            partition: None,
        };
        assert_eq!(client.admit(&register), Gate::Serve);
        assert_eq!(device.admit(&register), Gate::Serve);
        for reply in [
            Frame::DeviceHelloAck {
                version: PROTOCOL_VERSION,
                broker_time_ms: 0,
                max_frame_len: 1,
                config: None,
            },
            Frame::ConfigReply {
                request_id: 1,
                config: None,
            },
            Frame::DevicesReply {
                request_id: 1,
                json: "[]",
            },
        ] {
            assert_eq!(
                refusal(device.admit(&reply)),
                (ErrorCode::UNEXPECTED_FRAME, false)
            );
        }
    }
}
