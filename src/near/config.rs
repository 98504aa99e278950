//! Where the server is and how to talk to it: the settings a [`NearCache`](super::NearCache) is built
//! with, read from `LOCATION` and `OPTIONS` by the binding.

use std::path::{Path, PathBuf};
use std::time::Duration;

use redis::{Client, ClientTlsConfig, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, TlsCertificates};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use super::errors::NearError;

/// How long the listener's connection may stay quiet before it is asked for a `PING`, and how long
/// the `PING` may take: a connection that stays silent for both is taken as lost (the local copy is
/// flushed and tracking re-established on a new one).
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(1);

/// The settings of one near cache.
#[derive(Debug, Clone)]
pub struct NearConfig {
    /// The server writes go to (the first of Django's `LOCATION` list).
    pub write: ConnectionInfo,
    /// The server reads (and so tracking) use: the write server, or one of the others of the list.
    pub read: ConnectionInfo,
    /// Whether `read` is another server than `write`.
    pub separate_read: bool,
    /// How long connecting may take (`None`: the OS's limit).
    pub connect_timeout: Option<Duration>,
    /// How long a reply may take (`None`: wait for ever).
    pub socket_timeout: Option<Duration>,
    /// The key prefix tracked (`CLIENT TRACKING ON BCAST PREFIX`); empty tracks every key.
    pub prefix: Vec<u8>,
    /// The longest a local entry lives, whatever the server's TTL (`LOCAL["MAX_TTL"]`).
    pub max_ttl: Option<Duration>,
    /// See [`DEFAULT_HEARTBEAT`].
    pub heartbeat: Duration,
    /// If the server refuses tracking: fail (`true`), or keep a local copy capped at `max_ttl`.
    pub require_tracking: bool,
}

impl NearConfig {
    /// Settings for a server given by URL (`redis://`, `rediss://`, `unix://`, `valkey://`,
    /// `valkeys://`), reads and writes on it. A `rediss://` server is verified against the system's
    /// certificate authorities until [`with_tls`](Self::with_tls) says otherwise.
    pub fn new(url: &str) -> Result<Self, NearError> {
        let info = parse_url(url)?;
        Ok(Self {
            write: info.clone(),
            read: info,
            separate_read: false,
            connect_timeout: Some(Duration::from_secs(1)),
            socket_timeout: Some(Duration::from_secs(5)),
            prefix: Vec::new(),
            max_ttl: None,
            heartbeat: DEFAULT_HEARTBEAT,
            require_tracking: true,
        })
    }

    /// Read from (and track on) another server than the one written to.
    pub fn with_read_url(mut self, url: &str) -> Result<Self, NearError> {
        self.read = parse_url(url)?;
        self.separate_read = true;
        Ok(self)
    }

    /// Apply redis-py's `ssl_*` options to the `rediss://` servers (an error if there is none: the
    /// options would silently do nothing).
    pub fn with_tls(mut self, tls: &TlsSettings) -> Result<Self, NearError> {
        if !is_tls(&self.write) && !is_tls(&self.read) {
            return Err(NearError::Config(
                "the ssl_* options need a rediss:// (TLS) server in LOCATION".into(),
            ));
        }
        let certificates = tls.certificates()?;
        for info in [&mut self.write, &mut self.read] {
            if is_tls(info) {
                *info = tls.apply(info.clone(), &certificates)?;
            }
        }
        Ok(self)
    }
}

/// How a TLS server's certificate is checked: redis-py's `ssl_cert_reqs` and `ssl_check_hostname`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TlsVerify {
    /// The chain up to a trusted authority, and the host name (redis-py's default).
    #[default]
    Full,
    /// The chain, but any host name (`ssl_check_hostname=False`).
    AnyHostname,
    /// Nothing: any certificate is accepted (`ssl_cert_reqs="none"`); encrypted, not authenticated.
    Nothing,
}

/// The TLS settings of a near cache (redis-py's `ssl_*` options): files are read when the settings
/// are applied, so that a missing or bad one fails at start, not at the first connection.
#[derive(Debug, Clone, Default)]
pub struct TlsSettings {
    pub verify: TlsVerify,
    /// `ssl_ca_certs`: a PEM file of the authorities to trust instead of the system's.
    pub ca_file: Option<PathBuf>,
    /// `ssl_ca_data`: the same, inline.
    pub ca_pem: Option<Vec<u8>>,
    /// `ssl_certfile` and `ssl_keyfile`: this client's certificate chain and key (mutual TLS).
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

impl TlsSettings {
    fn certificates(&self) -> Result<TlsCertificates, NearError> {
        let mut root = self.ca_file.as_deref().map(read_pem).transpose()?;
        if let Some(pem) = &self.ca_pem {
            root.get_or_insert_with(Vec::new).extend_from_slice(pem);
        }
        if let Some(root) = &root {
            // An empty set of authorities would refuse every server, at each connection, vaguely.
            if !CertificateDer::pem_slice_iter(root).any(|cert| cert.is_ok()) {
                return Err(NearError::Config(
                    "bad TLS settings: ssl_ca_certs/ssl_ca_data hold no PEM certificate".into(),
                ));
            }
        }
        let client_tls = match (&self.cert_file, &self.key_file) {
            (None, None) => None,
            (Some(cert), key) => Some(ClientTlsConfig {
                client_cert: read_pem(cert)?,
                // As Python's `ssl`: without a key file, the key is in the certificate's file.
                client_key: read_pem(key.as_deref().unwrap_or(cert))?,
            }),
            (None, Some(_)) => {
                return Err(NearError::Config("ssl_keyfile needs ssl_certfile".into()));
            }
        };
        Ok(TlsCertificates {
            client_tls,
            root_cert: root,
        })
    }

    fn apply(&self, info: ConnectionInfo, certificates: &TlsCertificates) -> Result<ConnectionInfo, NearError> {
        let info = Client::build_with_tls(info, certificates.clone())
            .map_err(|err| NearError::Config(format!("bad TLS settings: {err}")))?
            .get_connection_info()
            .clone();
        let mut addr = info.addr().clone();
        match self.verify {
            TlsVerify::Full => {}
            TlsVerify::AnyHostname => addr.set_danger_accept_invalid_hostnames(true),
            TlsVerify::Nothing => {
                if let ConnectionAddr::TcpTls { insecure, .. } = &mut addr {
                    *insecure = true;
                }
            }
        }
        Ok(info.set_addr(addr))
    }
}

fn read_pem(path: &Path) -> Result<Vec<u8>, NearError> {
    std::fs::read(path).map_err(|err| NearError::Config(format!("cannot read {}: {err}", path.display())))
}

fn is_tls(info: &ConnectionInfo) -> bool {
    matches!(info.addr(), ConnectionAddr::TcpTls { .. })
}

fn parse_url(url: &str) -> Result<ConnectionInfo, NearError> {
    let info = url
        .into_connection_info()
        .map_err(|err| NearError::Config(format!("{url:?} is not a Redis URL: {err}")))?;
    if is_tls(&info) {
        // rustls's crypto, chosen once per process (an error means it already is).
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rediss_is_understood_and_tls_settings_need_it() {
        let config = NearConfig::new("rediss://127.0.0.1:6380/0").expect("a TLS URL");
        assert!(is_tls(&config.write) && is_tls(&config.read));
        let plain = NearConfig::new("redis://127.0.0.1:6379/0").expect("a URL");
        let err = plain.with_tls(&TlsSettings::default()).expect_err("no TLS server");
        assert!(matches!(err, NearError::Config(m) if m.contains("rediss://")));
    }

    #[test]
    fn bad_tls_files_fail_at_start() {
        let config = || NearConfig::new("rediss://127.0.0.1:6380/0").expect("a TLS URL");
        let missing = TlsSettings {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..TlsSettings::default()
        };
        assert!(matches!(config().with_tls(&missing), Err(NearError::Config(m)) if m.contains("cannot read")));
        let garbage = TlsSettings {
            ca_pem: Some(b"not a certificate".to_vec()),
            ..TlsSettings::default()
        };
        assert!(matches!(config().with_tls(&garbage), Err(NearError::Config(m)) if m.contains("no PEM")));
        let key_alone = TlsSettings {
            key_file: Some("/nonexistent/key.pem".into()),
            ..TlsSettings::default()
        };
        assert!(matches!(config().with_tls(&key_alone), Err(NearError::Config(m)) if m.contains("ssl_certfile")));
    }

    #[test]
    fn verification_maps_to_the_clients_flags() {
        let settings = |verify| TlsSettings {
            verify,
            ..TlsSettings::default()
        };
        let addr = |verify| {
            NearConfig::new("rediss://127.0.0.1:6380/0")
                .and_then(|c| c.with_tls(&settings(verify)))
                .expect("settings")
                .write
                .addr()
                .clone()
        };
        assert!(matches!(
            addr(TlsVerify::Full),
            ConnectionAddr::TcpTls { insecure: false, .. }
        ));
        assert!(matches!(
            addr(TlsVerify::Nothing),
            ConnectionAddr::TcpTls { insecure: true, .. }
        ));
    }
}
