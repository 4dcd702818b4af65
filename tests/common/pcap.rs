//! Minimal reader for the classic libpcap files that netdev-dummy writes for
//! `options:tx_pcap=FILE` (the same format `ovs-pcap` reads). Parsing it here
//! avoids one Python `ovs-pcap` start (~70 ms) per port per packet check.

use std::path::Path;

/// Returns the frames stored in the pcap file at `path`, in file order, as
/// lowercase hex. A missing or empty file has no frames. A truncated trailing
/// record (a write in progress) is ignored.
pub fn read_frames_hex(path: &Path) -> Result<Vec<String>, String> {
    let data = match std::fs::read(path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("reading {}: {e}", path.display())),
    };
    if data.is_empty() {
        return Ok(Vec::new());
    }
    if data.len() < 24 {
        return Err(format!("{}: pcap header truncated", path.display()));
    }
    let magic = [data[0], data[1], data[2], data[3]];
    // Microsecond (a1b2c3d4) or nanosecond (a1b23c4d) magic, either byte order.
    let big_endian = match magic {
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => false,
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => true,
        _ => {
            return Err(format!(
                "{}: not a pcap file (magic {magic:02x?})",
                path.display()
            ))
        }
    };
    let u32_at = |off: usize| {
        let b = [data[off], data[off + 1], data[off + 2], data[off + 3]];
        if big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    };
    let mut frames = Vec::new();
    let mut off = 24;
    while off + 16 <= data.len() {
        let caplen = u32_at(off + 8) as usize;
        let start = off + 16;
        let end = start + caplen;
        if end > data.len() {
            break;
        }
        frames.push(to_hex(&data[start..end]));
        off = end;
    }
    Ok(frames)
}

pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
