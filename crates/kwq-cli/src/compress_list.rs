//! `kwq list` (and `-l`): frames, sizes, ratio and whether a seek table is
//! present, per file.

use crate::compress::Common;
use anyhow::Context as _;
use std::process::ExitCode;

/// Prints one line per file; a file that cannot be indexed is reported
/// and makes the exit status non-zero.
pub fn list(c: &Common) -> anyhow::Result<ExitCode> {
    if c.files.is_empty() {
        anyhow::bail!("list needs file names (standard input cannot be indexed)");
    }
    println!(
        "{:>8} {:>14} {:>14} {:>8} {:>10}  File",
        "Frames", "Compressed", "Decompressed", "Ratio", "SeekTable"
    );
    let mut failed = false;
    for p in &c.files {
        let r = (|| -> anyhow::Result<()> {
            let f = std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?;
            let clen = f.metadata()?.len();
            let r = kwq_zstd::SeekableReader::new(std::io::BufReader::new(f))?;
            let ratio = if clen == 0 {
                0.0
            } else {
                r.len() as f64 / clen as f64
            };
            println!(
                "{:>8} {:>14} {:>14} {:>8.3} {:>10}  {}",
                r.frames().len(),
                clen,
                r.len(),
                ratio,
                if r.has_seek_table() { "yes" } else { "no" },
                p.display()
            );
            Ok(())
        })();
        if let Err(e) = r {
            eprintln!("kwq: {}: {e:#}", p.display());
            failed = true;
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
