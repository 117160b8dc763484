//! Which kind of Redis deployment a `PANEBUS_REDIS_URL` names, and the redis-crate clients
//! that reach it: one server (`redis://`, `rediss://`, `unix://`), a Redis Cluster
//! (`redis+cluster://`, `rediss+cluster://`) or a primary found through Redis Sentinel
//! (`redis+sentinel://`, `rediss+sentinel://`).
//!
//! Parsing is pure ([`Deployment::parse`]) so `config.rs` rejects a malformed URL before
//! anything connects; [`TlsFiles`] are read only when a connection is opened. Every message
//! names the URL through `redact_url`, never with its password.

use std::path::PathBuf;

use redis::{ClientTlsConfig, ConnectionInfo, IntoConnectionInfo, TlsCertificates};

/// The URL forms PaneBus accepts, for error messages.
pub const URL_FORMS: &str = "expected redis://[:PASSWORD@]HOST:PORT/DB, rediss://… (TLS), \
     unix:///PATH/redis.sock, redis+cluster://HOST:PORT,HOST:PORT (rediss+cluster:// for TLS) \
     or redis+sentinel://HOST:PORT,HOST:PORT/SERVICE[/DB] (rediss+sentinel:// for TLS)";

/// Default port of a cluster node named without one.
const DEFAULT_REDIS_PORT: u16 = 6379;
/// Default port of a sentinel named without one.
const DEFAULT_SENTINEL_PORT: u16 = 26379;

/// Where the bus's Redis is, parsed from its URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deployment {
    /// One server, reached by the URL as the redis crate reads it.
    Standalone { url: String, tls: bool },
    /// A Redis Cluster; `nodes` are `redis://`/`rediss://` URLs of the seed nodes, each
    /// carrying the credentials of the original URL.
    Cluster { nodes: Vec<String>, tls: bool },
    /// The primary of `service` as named by the sentinels at `sentinels`; `node_url` is a
    /// `redis://` URL that carries only the data nodes' credentials and database.
    Sentinel {
        sentinels: Vec<(String, u16)>,
        service: String,
        node_url: String,
        tls: bool,
    },
}

impl Deployment {
    /// Reads `url`; the error says what is wrong and which forms are accepted.
    pub fn parse(url: &str) -> Result<Deployment, String> {
        let url = url.trim();
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(URL_FORMS.to_string());
        };
        match scheme {
            "redis" | "rediss" | "unix" | "redis+unix" => {
                url.into_connection_info()
                    .map_err(|e| format!("not a valid Redis URL ({e}); {URL_FORMS}"))?;
                Ok(Deployment::Standalone {
                    url: url.to_string(),
                    tls: scheme == "rediss",
                })
            }
            "redis+cluster" | "rediss+cluster" => {
                let tls = scheme == "rediss+cluster";
                let parts = Parts::split(rest, DEFAULT_REDIS_PORT)?;
                if !matches!(parts.path, "" | "/" | "/0") {
                    return Err(format!(
                        "a Redis Cluster has only database 0; drop {:?} from the URL",
                        parts.path
                    ));
                }
                let nodes = parts
                    .hosts
                    .iter()
                    .map(|(host, port)| node_url(tls, parts.userinfo, host, *port, 0))
                    .collect::<Vec<_>>();
                for node in &nodes {
                    node.as_str()
                        .into_connection_info()
                        .map_err(|e| format!("not a valid cluster node address ({e})"))?;
                }
                Ok(Deployment::Cluster { nodes, tls })
            }
            "redis+sentinel" | "rediss+sentinel" => {
                let tls = scheme == "rediss+sentinel";
                let parts = Parts::split(rest, DEFAULT_SENTINEL_PORT)?;
                let mut path = parts.path.trim_start_matches('/').split('/');
                let service = path.next().unwrap_or("");
                if service.is_empty() {
                    return Err(
                        "name the service the sentinels monitor after the hosts, as in \
                         redis+sentinel://127.0.0.1:26379/mymaster"
                            .to_string(),
                    );
                }
                let db = match path.next() {
                    None | Some("") => 0,
                    Some(db) => db.parse::<i64>().map_err(|_| {
                        format!(
                            "{db:?} is not a database number; use …/SERVICE/DB, e.g. /mymaster/0"
                        )
                    })?,
                };
                if path.next().is_some() {
                    return Err(
                        "too many path parts; use redis+sentinel://HOSTS/SERVICE[/DB]".to_string(),
                    );
                }
                let node_url = node_url(false, parts.userinfo, "localhost", 0, db);
                node_url
                    .as_str()
                    .into_connection_info()
                    .map_err(|e| format!("the credentials cannot be read ({e})"))?;
                Ok(Deployment::Sentinel {
                    sentinels: parts.hosts,
                    service: service.to_string(),
                    node_url,
                    tls,
                })
            }
            _ => Err(URL_FORMS.to_string()),
        }
    }

    /// Whether connections use TLS.
    pub fn tls(&self) -> bool {
        match self {
            Deployment::Standalone { tls, .. }
            | Deployment::Cluster { tls, .. }
            | Deployment::Sentinel { tls, .. } => *tls,
        }
    }
}

/// `redis[s]://[USERINFO@]HOST:PORT/DB`; `port` 0 leaves the port out.
fn node_url(tls: bool, userinfo: Option<&str>, host: &str, port: u16, db: i64) -> String {
    let scheme = if tls { "rediss" } else { "redis" };
    let auth = userinfo.map(|u| format!("{u}@")).unwrap_or_default();
    let port = if port == 0 {
        String::new()
    } else {
        format!(":{port}")
    };
    format!("{scheme}://{auth}{host}{port}/{db}")
}

/// The pieces of a multi-host URL after its scheme.
struct Parts<'a> {
    userinfo: Option<&'a str>,
    hosts: Vec<(String, u16)>,
    path: &'a str,
}

impl<'a> Parts<'a> {
    fn split(rest: &'a str, default_port: u16) -> Result<Parts<'a>, String> {
        if rest.contains(['?', '#']) {
            return Err("options after `?` or `#` are not supported in this URL form".to_string());
        }
        let (authority, path) = match rest.find('/') {
            Some(slash) => rest.split_at(slash),
            None => (rest, ""),
        };
        let (userinfo, hosts) = match authority.rfind('@') {
            Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
            None => (None, authority),
        };
        let hosts = hosts
            .split(',')
            .map(|h| host_port(h.trim(), default_port))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Parts {
            userinfo,
            hosts,
            path,
        })
    }
}

fn host_port(text: &str, default_port: u16) -> Result<(String, u16), String> {
    let bad = || format!("{text:?} is not HOST or HOST:PORT; separate hosts with `,`");
    if text.is_empty() {
        return Err("a host is missing; list hosts as HOST:PORT,HOST:PORT".to_string());
    }
    let (host, port) = if let Some(v6) = text.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or_else(bad)?;
        (format!("[{host}]"), after.strip_prefix(':'))
    } else {
        match text.rsplit_once(':') {
            Some((host, port)) => (host.to_string(), Some(port)),
            None => (text.to_string(), None),
        }
    };
    if host.is_empty() || (host.contains([':', '@', ' ']) && !host.starts_with('[')) {
        return Err(bad());
    }
    let port = match port {
        None => default_port,
        Some(p) => p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(bad)?,
    };
    Ok((host, port))
}

/// The files of `PANEBUS_REDIS_CA_CERT`, `PANEBUS_REDIS_CLIENT_CERT` and
/// `PANEBUS_REDIS_CLIENT_KEY` (PEM). Without a CA file the system's trusted roots are used.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca_cert: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
}

impl TlsFiles {
    /// Whether any file is named.
    pub fn is_set(&self) -> bool {
        self.ca_cert.is_some() || self.client_cert.is_some() || self.client_key.is_some()
    }

    /// Reads the files into the redis crate's form; `None` when none is named.
    pub fn load(&self) -> Result<Option<TlsCertificates>, String> {
        if !self.is_set() {
            return Ok(None);
        }
        let read = |var: &str, path: &PathBuf| {
            std::fs::read(path).map_err(|e| {
                format!(
                    "cannot read {var} file {}: {e}; point it at a readable PEM file",
                    path.display()
                )
            })
        };
        let root_cert = match &self.ca_cert {
            Some(path) => Some(read("PANEBUS_REDIS_CA_CERT", path)?),
            None => None,
        };
        let client_tls = match (&self.client_cert, &self.client_key) {
            (Some(cert), Some(key)) => Some(ClientTlsConfig {
                client_cert: read("PANEBUS_REDIS_CLIENT_CERT", cert)?,
                client_key: read("PANEBUS_REDIS_CLIENT_KEY", key)?,
            }),
            (None, None) => None,
            _ => {
                return Err(
                    "set both PANEBUS_REDIS_CLIENT_CERT and PANEBUS_REDIS_CLIENT_KEY for mutual TLS, or neither"
                        .to_string(),
                )
            }
        };
        Ok(Some(TlsCertificates {
            client_tls,
            root_cert,
        }))
    }
}

/// A client for one server at `info`, with `certs` when given (TLS URLs only).
pub(super) fn client_for(
    info: ConnectionInfo,
    certs: Option<&TlsCertificates>,
) -> redis::RedisResult<redis::Client> {
    install_crypto_provider();
    match certs {
        Some(certs) => redis::Client::build_with_tls(info, certs.clone()),
        None => redis::Client::open(info),
    }
}

/// rustls needs a process-wide crypto provider; PaneBus builds it with `ring` only.
pub(super) fn install_crypto_provider() {
    // Err means one is installed already, which is just as good.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standalone_forms_are_kept_as_given() {
        for (url, tls) in [
            ("redis://localhost:6379/0", false),
            ("redis://:pw@10.0.0.1:7000/2", false),
            ("rediss://:pw@redis.example:6380/0", true),
            ("unix:///run/redis.sock", false),
            ("redis+unix:///run/redis.sock?db=1", false),
        ] {
            assert_eq!(
                Deployment::parse(url).unwrap(),
                Deployment::Standalone {
                    url: url.to_string(),
                    tls
                }
            );
        }
    }

    #[test]
    fn cluster_urls_list_seed_nodes_with_credentials() {
        let d = Deployment::parse("rediss+cluster://:p%40ss@h1:7000,h2,[::1]:7002").unwrap();
        assert_eq!(
            d,
            Deployment::Cluster {
                nodes: vec![
                    "rediss://:p%40ss@h1:7000/0".to_string(),
                    "rediss://:p%40ss@h2:6379/0".to_string(),
                    "rediss://:p%40ss@[::1]:7002/0".to_string(),
                ],
                tls: true
            }
        );
        assert!(Deployment::parse("redis+cluster://h1:7000/3")
            .unwrap_err()
            .contains("database 0"));
        assert!(Deployment::parse("redis+cluster://h1:7000,,h2")
            .unwrap_err()
            .contains("missing"));
        assert!(Deployment::parse("redis+cluster://h1:notaport")
            .unwrap_err()
            .contains("HOST:PORT"));
    }

    #[test]
    fn sentinel_urls_name_the_service_and_database() {
        let d = Deployment::parse("redis+sentinel://user:pw@s1,s2:26380/mymaster/2").unwrap();
        assert_eq!(
            d,
            Deployment::Sentinel {
                sentinels: vec![("s1".into(), 26379), ("s2".into(), 26380)],
                service: "mymaster".into(),
                node_url: "redis://user:pw@localhost/2".into(),
                tls: false,
            }
        );
        assert!(Deployment::parse("redis+sentinel://s1:26379")
            .unwrap_err()
            .contains("service"));
        assert!(Deployment::parse("redis+sentinel://s1/m/x")
            .unwrap_err()
            .contains("database number"));
        assert!(Deployment::parse("rediss+sentinel://s1/m").unwrap().tls());
    }

    #[test]
    fn unknown_schemes_list_the_accepted_forms() {
        for url in ["localhost:6379", "http://h/", "redis+cluster2://h"] {
            let err = Deployment::parse(url).unwrap_err();
            assert!(err.contains("redis+sentinel://"), "{err}");
        }
    }

    #[test]
    fn errors_never_show_the_password() {
        for url in [
            "redis+cluster://:hunter2@h1:x",
            "redis+sentinel://:hunter2@s1/m/x",
        ] {
            let err = Deployment::parse(url).unwrap_err();
            assert!(!err.contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn tls_files_must_exist_and_come_in_pairs() {
        assert!(TlsFiles::default().load().unwrap().is_none());
        let missing = TlsFiles {
            ca_cert: Some("/nonexistent/ca.pem".into()),
            ..TlsFiles::default()
        };
        let err = missing.load().unwrap_err();
        assert!(err.contains("PANEBUS_REDIS_CA_CERT") && err.contains("/nonexistent/ca.pem"));
        let half = TlsFiles {
            client_cert: Some("/nonexistent/c.pem".into()),
            ..TlsFiles::default()
        };
        assert!(half.load().unwrap_err().contains("both"));
    }
}
