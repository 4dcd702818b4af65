//! Log lines with stable `key=value` fields. An operator's command logs to stderr; the hook
//! logs to the systemd journal, else syslog (`/dev/log`), else stderr — libvirtd keeps a
//! successful hook's stderr only at debug level. Never stdout (libvirt reads a hook's stdout as
//! domain XML).

use std::os::unix::net::UnixDatagram;

const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";
const SYSLOG_SOCKET: &str = "/dev/log";
/// syslog facility `daemon` (3), shifted as RFC 3164 wants it.
const FACILITY_DAEMON: u8 = 3 << 3;

/// Syslog priorities used by vmguard.
#[derive(Clone, Copy)]
pub enum Level {
    Error = 3,
    Warning = 4,
    Info = 6,
}

/// Where log lines go, chosen once per process.
enum Sink {
    Stderr,
    Journal(UnixDatagram),
    Syslog(UnixDatagram),
}

pub struct Logger {
    sink: Sink,
}

fn connect(path: &str) -> Option<UnixDatagram> {
    let sock = UnixDatagram::unbound().ok()?;
    sock.connect(path).ok()?;
    Some(sock)
}

impl Logger {
    /// Plain stderr.
    pub fn stderr() -> Logger {
        Logger { sink: Sink::Stderr }
    }

    /// The journal, else syslog, else stderr: where a daemon's helper is expected to log.
    pub fn system() -> Logger {
        let sink = connect(JOURNAL_SOCKET)
            .map(Sink::Journal)
            .or_else(|| connect(SYSLOG_SOCKET).map(Sink::Syslog))
            .unwrap_or(Sink::Stderr);
        Logger { sink }
    }

    pub fn log(&self, level: Level, line: &str) {
        let line = line.replace('\n', " ");
        let sent = match &self.sink {
            Sink::Stderr => false,
            // Native journal protocol: one KEY=value per line.
            Sink::Journal(sock) => sock
                .send(
                    format!(
                        "SYSLOG_IDENTIFIER=vmguard\nPRIORITY={}\nMESSAGE={line}\n",
                        level as u8
                    )
                    .as_bytes(),
                )
                .is_ok(),
            Sink::Syslog(sock) => sock
                .send(
                    format!(
                        "<{}>vmguard[{}]: {line}",
                        FACILITY_DAEMON | level as u8,
                        std::process::id()
                    )
                    .as_bytes(),
                )
                .is_ok(),
        };
        if !sent {
            eprintln!("vmguard: {line}");
        }
    }

    pub fn info(&self, line: &str) {
        self.log(Level::Info, line);
    }

    pub fn warn(&self, line: &str) {
        self.log(Level::Warning, line);
    }

    pub fn error(&self, line: &str) {
        self.log(Level::Error, line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn received(sink: fn(UnixDatagram) -> Sink) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.sock");
        let server = UnixDatagram::bind(&path).unwrap();
        let logger = Logger {
            sink: sink(connect(path.to_str().unwrap()).unwrap()),
        };
        logger.error("hook vm=web1 failed:\nsecond line");
        let mut buf = [0u8; 512];
        let n = server.recv(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn syslog_line_has_priority_tag_and_one_line() {
        let msg = received(Sink::Syslog);
        assert!(msg.starts_with("<27>vmguard["), "{msg}");
        assert!(
            msg.ends_with("]: hook vm=web1 failed: second line"),
            "{msg}"
        );
    }

    #[test]
    fn journal_message_has_identifier_and_priority() {
        let msg = received(Sink::Journal);
        assert_eq!(
            msg,
            "SYSLOG_IDENTIFIER=vmguard\nPRIORITY=3\nMESSAGE=hook vm=web1 failed: second line\n"
        );
    }
}
