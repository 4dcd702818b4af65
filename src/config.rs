//! The host configuration file (TOML): which bridge vmguard guards, its uplinks, the ARP policy.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;

use crate::model::PortName;
use crate::provision::pool::{Ipv4Net, Ipv6Net, Pool, Reserved};

/// Where the configuration is read from when neither `--config` nor `VMGUARD_CONFIG` is given.
pub const DEFAULT_PATH: &str = "/etc/vmguard/config.toml";

/// How broadcast ARP requests for a guarded VM's address are handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ArpMode {
    /// Deliver the request only to the port of the VM that owns the address.
    #[default]
    Direct,
    /// Answer the request in the switch with the owner's MAC; no VM sees it.
    Responder,
}

impl ArpMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ArpMode::Direct => "direct",
            ArpMode::Responder => "responder",
        }
    }
}

/// A trusted port: an OVS port name, or the bridge's own `LOCAL` port.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Uplink {
    Local,
    Port(PortName),
}

impl std::fmt::Display for Uplink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Uplink::Local => f.write_str("LOCAL"),
            Uplink::Port(p) => p.fmt(f),
        }
    }
}

/// The validated host configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The OVS bridge whose VM ports vmguard guards.
    pub bridge: PortName,
    /// Trusted ports toward the gateway / DHCP server; `LOCAL` names the bridge's own port.
    pub uplinks: Vec<Uplink>,
    pub arp_mode: ArpMode,
    /// Directory of OVS's sockets (`db.sock`, `BRIDGE.mgmt`); `None` means OVS's built-in default.
    pub ovs_rundir: Option<PathBuf>,
    /// How long the hook waits for a new tap to get a valid ofport.
    pub ofport_timeout: Duration,
    /// Where `create` takes new VMs' addresses from (`[pool]`); `None` when not configured.
    pub pool: Option<Pool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    bridge: Option<String>,
    uplinks: Option<Vec<String>>,
    arp_mode: Option<ArpMode>,
    ovs_rundir: Option<PathBuf>,
    ofport_timeout_ms: Option<u64>,
    pool: Option<RawPool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPool {
    ipv4: Option<String>,
    ipv6: Option<String>,
    #[serde(default)]
    reserved: Vec<String>,
}

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("config file {path}: key '{key}': {message}")]
    Value {
        path: PathBuf,
        key: &'static str,
        message: String,
    },
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bridge: "vm-switch".parse().expect("valid default bridge name"),
            uplinks: vec![Uplink::Port(
                "upstream".parse().expect("valid default uplink"),
            )],
            arp_mode: ArpMode::Direct,
            ovs_rundir: None,
            ofport_timeout: Duration::from_millis(5000),
            pool: None,
        }
    }
}

impl Config {
    /// Parses a config file's text; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_path_buf(),
            // One line (libvirt shows a failed hook's last stderr line), with where it is.
            message: format!(
                "line {}: {}",
                e.span().map_or(1, |s| text[..s.start.min(text.len())]
                    .lines()
                    .count()
                    .max(1)),
                e.message().trim().replace('\n', "; ")
            ),
        })?;
        let value_err = |key, message: String| ConfigError::Value {
            path: path.to_path_buf(),
            key,
            message,
        };
        let mut cfg = Config::default();
        if let Some(b) = raw.bridge {
            cfg.bridge = b.parse().map_err(|e| value_err("bridge", format!("{e}")))?;
        }
        if let Some(list) = raw.uplinks {
            let mut uplinks = Vec::new();
            for u in list {
                let uplink = if u == "LOCAL" {
                    Uplink::Local
                } else {
                    Uplink::Port(
                        u.parse()
                            .map_err(|e| value_err("uplinks", format!("{e}")))?,
                    )
                };
                if uplinks.contains(&uplink) {
                    return Err(value_err("uplinks", format!("'{uplink}' is listed twice")));
                }
                uplinks.push(uplink);
            }
            cfg.uplinks = uplinks;
        }
        if let Some(m) = raw.arp_mode {
            cfg.arp_mode = m;
        }
        if let Some(dir) = raw.ovs_rundir {
            if !dir.is_absolute() {
                return Err(value_err("ovs_rundir", "must be an absolute path".into()));
            }
            cfg.ovs_rundir = Some(dir);
        }
        if let Some(ms) = raw.ofport_timeout_ms {
            cfg.ofport_timeout = Duration::from_millis(ms);
        }
        if let Some(raw) = raw.pool {
            let ipv4 = raw
                .ipv4
                .map(|s| s.parse::<Ipv4Net>())
                .transpose()
                .map_err(|e| value_err("pool.ipv4", e.to_string()))?;
            let ipv6 = raw
                .ipv6
                .map(|s| s.parse::<Ipv6Net>())
                .transpose()
                .map_err(|e| value_err("pool.ipv6", e.to_string()))?;
            let reserved = raw
                .reserved
                .iter()
                .map(|s| s.parse::<Reserved>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| value_err("pool.reserved", e.to_string()))?;
            let pool =
                Pool::new(ipv4, ipv6, reserved).map_err(|e| value_err("pool", e.to_string()))?;
            cfg.pool = Some(pool);
        }
        if cfg
            .uplinks
            .iter()
            .any(|u| matches!(u, Uplink::Port(p) if *p == cfg.bridge))
        {
            return Err(value_err(
                "uplinks",
                "the bridge's own port is named LOCAL in uplinks, not by the bridge name".into(),
            ));
        }
        Ok(cfg)
    }

    /// Loads the config: an explicit path (flag or `VMGUARD_CONFIG`) must exist; the default path
    /// is optional and built-in defaults apply without it.
    pub fn load(explicit: Option<&Path>) -> Result<Config, ConfigError> {
        let (path, required) = match explicit {
            Some(p) => (p.to_path_buf(), true),
            None => (PathBuf::from(DEFAULT_PATH), false),
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => Config::parse(&text, &path),
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
                Ok(Config::default())
            }
            Err(source) => Err(ConfigError::Read { path, source }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("test.toml"))
    }

    #[test]
    fn defaults_when_empty() {
        let c = parse("").unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.bridge.as_str(), "vm-switch");
        assert_eq!(c.uplinks, vec![Uplink::Port("upstream".parse().unwrap())]);
        assert_eq!(c.arp_mode, ArpMode::Direct);
        assert_eq!(c.ovs_rundir, None);
    }

    #[test]
    fn all_keys() {
        let c = parse(
            "bridge = \"br-lab\"\nuplinks = [\"eth1\", \"LOCAL\"]\narp_mode = \"responder\"\novs_rundir = \"/run/ovs\"\nofport_timeout_ms = 250\n",
        )
        .unwrap();
        assert_eq!(c.bridge.as_str(), "br-lab");
        assert_eq!(
            c.uplinks,
            vec![Uplink::Port("eth1".parse().unwrap()), Uplink::Local]
        );
        assert_eq!(c.arp_mode, ArpMode::Responder);
        assert_eq!(c.ovs_rundir, Some(PathBuf::from("/run/ovs")));
        assert_eq!(c.ofport_timeout, Duration::from_millis(250));
    }

    #[test]
    fn errors_name_the_key() {
        let e = parse("bridg = \"x\"").unwrap_err().to_string();
        assert!(e.contains("unknown field") && e.contains("bridg"), "{e}");
        let e = parse("arp_mode = \"proxy\"").unwrap_err().to_string();
        assert!(e.contains("proxy"), "{e}");
        let e = parse("uplinks = [\"a\", \"a\"]").unwrap_err().to_string();
        assert!(e.contains("uplinks") && e.contains("twice"), "{e}");
        let e = parse("ovs_rundir = \"run\"").unwrap_err().to_string();
        assert!(e.contains("ovs_rundir"), "{e}");
        let e = parse("bridge = \"a/b\"").unwrap_err().to_string();
        assert!(e.contains("bridge"), "{e}");
        assert!(parse("bridge = 3").is_err());
        let e = parse("uplinks = []\nbridge = vm-switch\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2") && !e.contains('\n'), "{e}");
        assert!(parse("[pool]\nipv4 = \"x\"").is_err());
    }

    #[test]
    fn pool_table() {
        let c = parse(
            "[pool]\nipv4 = \"10.0.0.0/24\"\nipv6 = \"2001:db8::/64\"\nreserved = [\"10.0.0.1\", \"10.0.0.240/28\", \"2001:db8::1\"]\n",
        )
        .unwrap();
        let pool = c.pool.unwrap();
        assert_eq!(pool.ipv4().unwrap().to_string(), "10.0.0.0/24");
        assert_eq!(pool.ipv6().unwrap().to_string(), "2001:db8::/64");
        assert_eq!(pool.reserved().len(), 3);
        assert_eq!(parse("").unwrap().pool, None);
        let v4_only = parse("[pool]\nipv4 = \"192.168.5.0/25\"").unwrap();
        assert!(v4_only.pool.unwrap().ipv6().is_none());
        for (text, key) in [
            ("[pool]\nipv4 = \"10.0.0.1/24\"", "key 'pool.ipv4'"),
            (
                "[pool]\nipv6 = \"2001:db8::/48\"",
                "key 'pool': ipv6 prefix 2001:db8::/48 must be a /64",
            ),
            ("[pool]\nipv6 = \"10.0.0.0/8\"", "key 'pool.ipv6'"),
            (
                "[pool]\nipv4 = \"10.0.0.0/24\"\nreserved = [\"gw\"]",
                "key 'pool.reserved'",
            ),
            (
                "[pool]\nipv4 = \"10.0.0.0/24\"\nreserved = [\"10.0.1.1\"]",
                "not inside the pool",
            ),
            (
                "[pool]\nreserved = []",
                "key 'pool': needs ipv4, ipv6 or both",
            ),
            (
                "[pool]\nipv4 = \"10.0.0.0/24\"\ngateway = \"10.0.0.1\"",
                "unknown field `gateway`",
            ),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(key), "{text}: {e}");
        }
    }

    #[test]
    fn missing_default_file_gives_defaults_but_explicit_must_exist() {
        let e = Config::load(Some(Path::new("/nonexistent/vmguard.toml"))).unwrap_err();
        assert!(matches!(e, ConfigError::Read { .. }));
    }
}
