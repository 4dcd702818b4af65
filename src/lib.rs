//! vmguard: compiles libvirt domains' owned addresses into OpenFlow guard flows for Open vSwitch.
pub mod battery;
pub mod compile;
pub mod config;
pub mod domain;
pub mod engine;
pub mod flow;
pub mod frames;
pub mod model;
pub mod openflow;
pub mod ovs;
pub mod pipeline;
pub mod provision;

/// Like `print!`, for a command's output: a reader that closed the pipe early (`vmguard flows |
/// head`) ends the output quietly instead of a panic, and the command still finishes its work.
#[macro_export]
macro_rules! out {
    ($($t:tt)*) => { $crate::write_stdout(format_args!($($t)*)) };
}

/// Like `println!`, with [`out!`]'s handling of a closed pipe.
#[macro_export]
macro_rules! outln {
    () => { $crate::write_stdout(format_args!("\n")) };
    ($($t:tt)*) => { $crate::write_stdout(format_args!("{}\n", format_args!($($t)*))) };
}

static OUTPUT_FAILED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Writes to stdout; a closed pipe is ignored, any other failure is reported once on stderr
/// and remembered for [`output_failed`].
pub fn write_stdout(args: std::fmt::Arguments) {
    use std::io::Write;
    use std::sync::atomic::Ordering;
    if let Err(e) = std::io::stdout().lock().write_fmt(args) {
        if e.kind() != std::io::ErrorKind::BrokenPipe
            && !OUTPUT_FAILED.swap(true, Ordering::Relaxed)
        {
            eprintln!("vmguard: error: cannot write the output: {e}");
        }
    }
}

/// Whether writing the output failed (other than by a closed pipe): the command must not exit 0.
pub fn output_failed() -> bool {
    OUTPUT_FAILED.load(std::sync::atomic::Ordering::Relaxed)
}
