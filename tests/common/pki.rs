//! Test certificates: a CA generated with rcgen and the server and client certificates it
//! signs, as PEM files, with the config and client settings that use them.

use std::path::{Path, PathBuf};

use outpost::client::ClientTls;

/// A CA and the PEM files it signed: a server certificate for 127.0.0.1 and a client
/// certificate with common name `sensor-7`.
pub struct Pki {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl Pki {
    /// Generates a CA named `name` and its certificates under `dir/name/`.
    pub fn new(dir: &Path, name: &str) -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
        let dir = dir.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, name);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issue = |names: Vec<String>, cn: &str| {
            let key = KeyPair::generate().unwrap();
            let mut p = CertificateParams::new(names).unwrap();
            p.distinguished_name.push(DnType::CommonName, cn);
            let cert = p.signed_by(&key, &ca_cert, &ca_key).unwrap();
            (cert.pem(), key.serialize_pem())
        };
        let (server, server_key) = issue(vec!["127.0.0.1".into(), "localhost".into()], "outpost");
        let (client, client_key) = issue(vec!["sensor-7.example".into()], "sensor-7");
        let write = |file: &str, text: &str| {
            let p = dir.join(file);
            std::fs::write(&p, text).unwrap();
            p
        };
        Pki {
            ca: write("ca.pem", &ca_cert.pem()),
            server_cert: write("server.pem", &server),
            server_key: write("server.key", &server_key),
            client_cert: write("client.pem", &client),
            client_key: write("client.key", &client_key),
        }
    }

    /// A `[mqtt.tls]` / `[wire.tls]` section serving this PKI's server certificate from the
    /// files at `cert` and `key`.
    pub fn section(&self, table: &str, cert: &Path, key: &Path, extra: &str) -> String {
        format!(
            "[{table}]\nlisten = \"127.0.0.1:0\"\ncert_file = {:?}\nkey_file = {:?}\n{extra}\n",
            cert.display().to_string(),
            key.display().to_string()
        )
    }

    /// Settings of Outpost's client trusting this CA, with the client certificate or not.
    pub fn client_tls(&self, with_cert: bool) -> ClientTls {
        ClientTls {
            ca_file: self.ca.clone(),
            cert_file: with_cert.then(|| self.client_cert.clone()),
            key_file: with_cert.then(|| self.client_key.clone()),
            server_name: None,
        }
    }
}
