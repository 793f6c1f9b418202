//! Helpers for the authentication and ACL tests: password files made with the real
//! `outpost passwd`, ACL files, a broker that requires a login, and CLI calls with
//! credentials.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use super::{bin, Broker};

/// The ACL most tests run with: `admin` may do everything; every client may publish and
/// subscribe under `users/<its user>/` and `clients/<its client id>/`, subscribe to
/// `public/#`; `dev` produces to and `reader` consumes the log topic `readings`.
pub const ACL: &str = r##"
[[rule]]
user = "admin"
access = "allow"
actions = ["all"]
topics = ["#", "$SYS/#", "$bridge"]

[[rule]]
access = "allow"
actions = ["publish", "subscribe"]
topics = ["users/%u/#", "clients/%c/#"]

[[rule]]
access = "allow"
actions = ["subscribe"]
topics = ["public/#"]

[[rule]]
user = "dev"
access = "allow"
actions = ["publish"]
topics = ["readings"]

[[rule]]
user = "reader"
access = "allow"
actions = ["consume"]
topics = ["readings"]
"##;

/// The users of [`secure_broker`] and their passwords.
pub const USERS: [(&str, &str); 5] = [
    ("admin", "admin-pw"),
    ("alice", "alice-pw"),
    ("bob", "bob-pw"),
    ("dev", "dev-pw"),
    ("reader", "reader-pw"),
];

/// The password of a user of [`USERS`].
pub fn password_of(user: &str) -> &'static str {
    USERS
        .iter()
        .find(|(u, _)| *u == user)
        .map(|(_, p)| *p)
        .unwrap_or_else(|| panic!("no test user {user}"))
}

/// Runs `cmd` with `stdin` as its input to completion (killed after 60 s); returns its
/// output.
pub fn output(mut cmd: Command, stdin: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot spawn {cmd:?}: {e}"));
    {
        use std::io::Write;
        let mut input = child.stdin.take().unwrap();
        let _ = input.write_all(stdin.as_bytes());
    }
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(out) => out.expect("process output"),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("{cmd:?} did not finish within 60 s")
        }
    }
}

/// Runs `outpost passwd ARGS` with `stdin` as its input; returns its output.
pub fn passwd(args: &[&str], stdin: &str) -> Output {
    let mut cmd = Command::new(bin());
    cmd.arg("passwd").args(args);
    output(cmd, stdin)
}

/// Adds `user` with `password` to `file` (with `--stdin`), asserting success.
pub fn add_user(file: &Path, user: &str, password: &str) {
    let file = file.to_str().unwrap();
    let out = passwd(&["add", file, user, "--stdin"], &format!("{password}\n"));
    assert!(
        out.status.success(),
        "passwd add {user}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A password file with every user of [`USERS`] in `dir`.
pub fn password_file(dir: &Path) -> PathBuf {
    let file = dir.join("passwd");
    for (user, password) in USERS {
        add_user(&file, user, password);
    }
    file
}

/// Starts a broker with a password file of [`USERS`], the ACL text `acl` (none when empty)
/// and extra config; returns it with the ACL file's path.
pub fn secure_broker(dir: &Path, acl: &str, extra: &str) -> (Broker, PathBuf) {
    let passwd = password_file(dir);
    let acl_file = dir.join("acl.toml");
    let mut auth = format!(
        "[auth]\npassword_file = {:?}\n",
        passwd.display().to_string()
    );
    if !acl.is_empty() {
        std::fs::write(&acl_file, acl).unwrap();
        auth.push_str(&format!(
            "acl_file = {:?}\n",
            acl_file.display().to_string()
        ));
    }
    let broker = Broker::start(&dir.join("data"), &format!("{auth}{extra}"));
    (broker, acl_file)
}

/// Runs the CLI against `b` as `user` (its password from [`USERS`]; `None`: no login).
pub fn cli_as(b: &Broker, user: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(bin());
    cmd.arg("--broker").arg(&b.addr);
    if let Some(u) = user {
        cmd.args(["--user", u])
            .env("OUTPOST_PASSWORD", password_of(u));
    }
    cmd.args(args).env("RUST_LOG", "warn");
    output(cmd, "")
}

/// The records of log topic `topic` read from the beginning as `admin` (at most `max`), as
/// the CLI's JSON objects.
pub fn consume_as_admin(b: &Broker, topic: &str, max: u64) -> Vec<serde_json::Value> {
    let max = max.to_string();
    let out = cli_as(b, Some("admin"), &super::consume_json_args(topic, &max));
    assert!(
        out.status.success(),
        "consume {topic}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    super::json_lines(&String::from_utf8(out.stdout).unwrap())
}

/// Sends SIGHUP to the broker.
pub fn sighup(b: &Broker) {
    let ok = Command::new("kill")
        .args(["-HUP", &b.pid().to_string()])
        .status()
        .expect("kill -HUP")
        .success();
    assert!(ok, "kill -HUP failed");
}
