//! Log lines with stable `key=value` fields: to the systemd journal when its socket exists,
//! else to stderr. Never to stdout (libvirt reads a hook's stdout as domain XML).

use std::os::unix::net::UnixDatagram;
use std::path::Path;

const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";

/// Syslog priorities used by vmguard.
#[derive(Clone, Copy)]
pub enum Level {
    Error = 3,
    Warning = 4,
    Info = 6,
}

/// Where log lines go, chosen once per process.
pub struct Logger {
    journal: Option<UnixDatagram>,
}

impl Logger {
    /// Plain stderr.
    pub fn stderr() -> Logger {
        Logger { journal: None }
    }

    /// The journal if its socket accepts us, else stderr.
    pub fn journal_or_stderr() -> Logger {
        let journal = Path::new(JOURNAL_SOCKET)
            .exists()
            .then(|| UnixDatagram::unbound().ok())
            .flatten()
            .filter(|s| s.connect(JOURNAL_SOCKET).is_ok());
        Logger { journal }
    }

    pub fn log(&self, level: Level, line: &str) {
        if let Some(sock) = &self.journal {
            // Native journal protocol: one KEY=value per line; a message is one line here.
            let msg = format!(
                "SYSLOG_IDENTIFIER=vmguard\nPRIORITY={}\nMESSAGE={}\n",
                level as u8,
                line.replace('\n', " ")
            );
            if sock.send(msg.as_bytes()).is_ok() {
                return;
            }
        }
        eprintln!("vmguard: {line}");
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
