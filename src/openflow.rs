//! The few OpenFlow 1.4 requests vmguard sends itself on the bridge's management socket
//! (`RUNDIR/BRIDGE.mgmt`, the one `ovs-ofctl` uses) instead of starting an `ovs-ofctl` process
//! for each: reading and setting the fragment mode, and counting flows by cookie. Each is a
//! few dozen bytes; a process costs 5-8 ms, most of a hook's own time.
//!
//! Flows themselves still go through `ovs-ofctl` (bundles, dumps): their text form is what
//! vmguard compiles and compares.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// OpenFlow 1.4's wire version.
const VERSION: u8 = 0x05;
const OFPT_HELLO: u8 = 0;
const OFPT_ERROR: u8 = 1;
const OFPT_ECHO_REQUEST: u8 = 2;
const OFPT_ECHO_REPLY: u8 = 3;
const OFPT_GET_CONFIG_REQUEST: u8 = 7;
const OFPT_GET_CONFIG_REPLY: u8 = 8;
const OFPT_SET_CONFIG: u8 = 9;
const OFPT_MULTIPART_REQUEST: u8 = 18;
const OFPT_MULTIPART_REPLY: u8 = 19;
const OFPMP_AGGREGATE: u16 = 2;
/// The fragment-handling bits of the switch config flags.
const OFPC_FRAG_MASK: u16 = 3;
/// Ample for one reply; OVS answers these within milliseconds.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Fragment modes by their config-flag value (`ovs-ofctl get-frags` names).
const FRAG_MODES: [&str; 4] = ["normal", "drop", "reassemble", "nx-match"];

#[derive(Debug, thiserror::Error)]
#[error("OpenFlow on {}: {what}: {problem}", .path.display())]
pub struct OfError {
    pub path: PathBuf,
    pub what: String,
    pub problem: String,
}

/// One connection to a bridge, after the version handshake.
pub struct Connection {
    path: PathBuf,
    stream: UnixStream,
    xid: u32,
}

impl Connection {
    pub fn open(path: &Path) -> Result<Connection, OfError> {
        let err = |problem: String| OfError {
            path: path.to_path_buf(),
            what: "connecting".into(),
            problem,
        };
        let stream = UnixStream::connect(path).map_err(|e| err(e.to_string()))?;
        for r in [
            stream.set_read_timeout(Some(TIMEOUT)),
            stream.set_write_timeout(Some(TIMEOUT)),
        ] {
            r.map_err(|e| err(e.to_string()))?;
        }
        let mut c = Connection {
            path: path.to_path_buf(),
            stream,
            xid: 0,
        };
        c.send("hello", OFPT_HELLO, &[])?;
        // The switch's own hello carries its own xid.
        let (version, _) = c.reply("hello", None, OFPT_HELLO)?;
        if version < VERSION {
            return Err(c.error(
                "hello",
                format!(
                    "the bridge speaks OpenFlow wire version {version:#04x}, not 1.4 ({VERSION:#04x}): \
                     enable OpenFlow14 in its protocols (vmguard init does)"
                ),
            ));
        }
        Ok(c)
    }

    fn error(&self, what: &str, problem: String) -> OfError {
        OfError {
            path: self.path.clone(),
            what: what.into(),
            problem,
        }
    }

    /// Sends one message; its xid.
    fn send(&mut self, what: &str, kind: u8, body: &[u8]) -> Result<u32, OfError> {
        self.xid += 1;
        let len = u16::try_from(8 + body.len()).expect("vmguard's requests are short");
        let mut msg = Vec::with_capacity(usize::from(len));
        msg.extend([VERSION, kind]);
        msg.extend(len.to_be_bytes());
        msg.extend(self.xid.to_be_bytes());
        msg.extend(body);
        self.stream
            .write_all(&msg)
            .map_err(|e| self.error(what, format!("cannot send: {e}")))?;
        Ok(self.xid)
    }

    /// Reads messages until the reply of type `kind` to `xid` (any xid if `None`), answering
    /// echo requests and skipping asynchronous messages; an OpenFlow error for `xid` is an
    /// error.
    fn reply(&mut self, what: &str, xid: Option<u32>, kind: u8) -> Result<(u8, Vec<u8>), OfError> {
        loop {
            let mut header = [0u8; 8];
            self.stream
                .read_exact(&mut header)
                .map_err(|e| self.error(what, format!("no reply: {e}")))?;
            let len = usize::from(u16::from_be_bytes([header[2], header[3]]));
            if len < 8 {
                return Err(self.error(what, format!("message of length {len}")));
            }
            let mut body = vec![0u8; len - 8];
            self.stream
                .read_exact(&mut body)
                .map_err(|e| self.error(what, format!("truncated reply: {e}")))?;
            let got = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
            let ours = xid.is_none_or(|x| x == got);
            match header[1] {
                OFPT_ECHO_REQUEST => {
                    let mut echo = header;
                    echo[0] = VERSION;
                    echo[1] = OFPT_ECHO_REPLY;
                    let msg = [&echo[..], &body].concat();
                    self.stream
                        .write_all(&msg)
                        .map_err(|e| self.error(what, format!("cannot send: {e}")))?;
                }
                OFPT_ERROR if ours => {
                    let code = |i: usize| {
                        body.get(i..i + 2)
                            .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]))
                    };
                    return Err(self.error(
                        what,
                        format!(
                            "the switch refused it (error type {}, code {})",
                            code(0),
                            code(2)
                        ),
                    ));
                }
                k if k == kind && ours => return Ok((header[0], body)),
                _ => {}
            }
        }
    }

    /// The bridge's fragment mode, as `ovs-ofctl get-frags` names it.
    pub fn get_frags(&mut self) -> Result<&'static str, OfError> {
        let xid = self.send("reading the fragment mode", OFPT_GET_CONFIG_REQUEST, &[])?;
        self.read_frags(xid)
    }

    fn read_frags(&mut self, xid: u32) -> Result<&'static str, OfError> {
        let what = "reading the fragment mode";
        let (_, body) = self.reply(what, Some(xid), OFPT_GET_CONFIG_REPLY)?;
        let flags = body
            .get(..2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .ok_or_else(|| self.error(what, "short reply".into()))?;
        Ok(FRAG_MODES[usize::from(flags & OFPC_FRAG_MASK)])
    }

    /// Sets the fragment mode (keeping the other config fields), waiting until it applies.
    pub fn set_frags(&mut self, mode: &str) -> Result<(), OfError> {
        let what = "setting the fragment mode";
        let Some(bits) = FRAG_MODES.iter().position(|m| *m == mode) else {
            return Err(self.error(what, format!("unknown fragment mode {mode}")));
        };
        let xid = self.send(what, OFPT_GET_CONFIG_REQUEST, &[])?;
        let (_, body) = self.reply(what, Some(xid), OFPT_GET_CONFIG_REPLY)?;
        if body.len() < 4 {
            return Err(self.error(what, "short reply".into()));
        }
        let flags = u16::from_be_bytes([body[0], body[1]]) & !OFPC_FRAG_MASK | bits as u16;
        let mut config = flags.to_be_bytes().to_vec();
        config.extend(&body[2..4]);
        self.send(what, OFPT_SET_CONFIG, &config)?;
        // SET_CONFIG has no reply, and OVS ignores a mode it does not support: read it back
        // (the reply also says the SET_CONFIG before it was processed).
        let now = self.get_frags()?;
        if now != mode {
            return Err(self.error(
                what,
                format!("the switch kept mode {now}: it does not support {mode}"),
            ));
        }
        Ok(())
    }

    /// How many flows, in all tables, have `cookie & mask == value & mask`.
    pub fn count_flows(&mut self, value: u64, mask: u64) -> Result<u32, OfError> {
        Ok(self.count_flows_many(&[(value, mask)])?[0])
    }

    /// [`Connection::count_flows`] for each `(value, mask)`, all requests sent before the first
    /// reply is read: one round trip to ovs-vswitchd, whose main loop serves a connection once
    /// per pass (a pass takes longer the more ports the bridge has). With a full mask OVS finds
    /// the flows through its cookie index, without scanning the tables.
    pub fn count_flows_many(&mut self, selectors: &[(u64, u64)]) -> Result<Vec<u32>, OfError> {
        self.frags_and_counts(selectors, false).map(|(_, n)| n)
    }

    /// The fragment mode (if `frags`) and [`Connection::count_flows_many`], in one round trip.
    pub fn frags_and_counts(
        &mut self,
        selectors: &[(u64, u64)],
        frags: bool,
    ) -> Result<(Option<&'static str>, Vec<u32>), OfError> {
        let config = if frags {
            Some(self.send("reading the fragment mode", OFPT_GET_CONFIG_REQUEST, &[])?)
        } else {
            None
        };
        let what = "counting flows";
        let mut xids = Vec::with_capacity(selectors.len());
        for (value, mask) in selectors {
            let mut body = Vec::with_capacity(48);
            body.extend(OFPMP_AGGREGATE.to_be_bytes());
            body.extend([0u8; 6]); // flags, pad
            body.extend([0xff, 0, 0, 0]); // table_id = all, pad
            body.extend(u32::MAX.to_be_bytes()); // out_port = any
            body.extend(u32::MAX.to_be_bytes()); // out_group = any
            body.extend([0u8; 4]);
            body.extend(value.to_be_bytes());
            body.extend(mask.to_be_bytes());
            body.extend([0, 1, 0, 4, 0, 0, 0, 0]); // empty OXM match, padded to 8
            xids.push(self.send(what, OFPT_MULTIPART_REQUEST, &body)?);
        }
        // OVS answers one connection's requests in order.
        let mode = match config {
            Some(xid) => Some(self.read_frags(xid)?),
            None => None,
        };
        let mut out = Vec::with_capacity(xids.len());
        for xid in xids {
            let (_, reply) = self.reply(what, Some(xid), OFPT_MULTIPART_REPLY)?;
            // type, flags, pad (8), packet_count, byte_count (16), flow_count.
            let n = reply
                .get(24..28)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                .ok_or_else(|| self.error(what, "short reply".into()))?;
            out.push(n);
        }
        Ok((mode, out))
    }
}
