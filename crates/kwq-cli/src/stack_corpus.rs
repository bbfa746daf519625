//! The built-in corpus of `kwq stack`: a tree of documentation-like files
//! made on the spot from a seed, so the demo needs no download and still
//! gives the compressor realistic work.
//!
//! # What it looks like
//!
//! Each file is an HTML page of a made-up API reference: a shared page
//! header (as generated docs repeat theirs), a title, then sections of
//! prose whose words follow a Zipf law over a vocabulary of a few thousand
//! syllable-built words, code blocks with identifiers and numbers, and a
//! shared footer. File sizes spread over three decades (a few hundred
//! bytes to a few MiB), as in a real docs tree, so small files, mid-size
//! files and files spanning many extents all occur.
//!
//! The same seed gives the same bytes. At zstd level 3 the corpus
//! compresses several times (a test holds it between 3x and 20x), far
//! from the all-zeros or random extremes.

use kwq_store::Rng;

/// A generated file: its path under the store's root and its bytes.
pub struct CorpusFile {
    /// Name (no `/`), unique within one corpus.
    pub name: String,
    /// Contents.
    pub data: Vec<u8>,
}

const SYLLABLES: &[&str] = &[
    "ka", "lo", "ri", "sen", "ta", "mor", "vel", "qu", "ne", "dis", "pa", "tor", "ex", "im", "ul",
    "ban", "cho", "fe", "gra", "hy", "jo", "lin", "mi", "no", "or", "pre", "sa", "th", "un", "wer",
];

/// The vocabulary: `n` words built from syllables, most common first.
fn vocabulary(rng: &mut Rng, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            // Common words are short, as in natural language.
            let syl = 1 + (u64::from((i + 1).ilog2()) / 3).min(3) + rng.below(2);
            (0..syl)
                .map(|_| SYLLABLES[rng.below(SYLLABLES.len() as u64) as usize])
                .collect()
        })
        .collect()
}

/// Draws word indexes with probability ~ 1 / (rank + 1): a Zipf law,
/// sampled by inverting the harmonic-number approximation.
fn zipf(rng: &mut Rng, n: usize) -> usize {
    let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    let h = (n as f64).ln() + 0.5772;
    let k = (u * h - 0.5772).exp();
    (k as usize).min(n - 1)
}

struct Gen {
    rng: Rng,
    words: Vec<String>,
    /// Stock phrases (docs repeat "returns the", "see also" ...).
    phrases: Vec<String>,
    header: Vec<u8>,
}

impl Gen {
    fn word(&mut self) -> &str {
        let i = zipf(&mut self.rng, self.words.len());
        &self.words[i]
    }

    fn sentence(&mut self, out: &mut Vec<u8>) {
        let n = 4 + self.rng.below(8);
        for k in 0..n {
            if k > 0 {
                out.push(b' ');
            }
            let w = if self.rng.below(2) == 0 {
                self.phrases[zipf(&mut self.rng, self.phrases.len())].clone()
            } else {
                self.word().to_string()
            };
            if k == 0 {
                let mut c = w.into_bytes();
                c[0] = c[0].to_ascii_uppercase();
                out.extend_from_slice(&c);
            } else if self.rng.below(9) == 0 {
                out.extend_from_slice(format!("<code>{w}_{}</code>", self.word()).as_bytes());
            } else {
                out.extend_from_slice(w.as_bytes());
            }
        }
        out.extend_from_slice(b". ");
    }

    fn code_block(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"<pre class=\"rust\"><code>");
        for _ in 0..2 + self.rng.below(8) {
            let (a, b) = (self.word().to_string(), self.word().to_string());
            let n = self.rng.below(64);
            let line = match self.rng.below(3) {
                0 => format!("let {a}_{b} = {a}::new({n});\n"),
                1 => format!("    {a}.{b}(&amp;mut {b}, {n})?;\n"),
                _ => format!(
                    "pub fn {a}(&amp;self) -&gt; {}{b} {{ {n} }}\n",
                    b[..1].to_uppercase()
                ),
            };
            out.extend_from_slice(line.as_bytes());
        }
        out.extend_from_slice(b"</code></pre>\n");
    }

    fn page(&mut self, title: &str, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 4096);
        out.extend_from_slice(&self.header);
        out.extend_from_slice(
            format!("<title>{title}</title></head>\n<body><h1>{title}</h1>\n").as_bytes(),
        );
        while out.len() < len {
            let head = self.word().to_string();
            out.extend_from_slice(
                format!("<h2 id=\"{head}\" class=\"section-header\"><a href=\"#{head}\" class=\"anchor\">\u{a7}</a>{head}</h2>\n<div class=\"docblock\"><p>")
                    .as_bytes(),
            );
            for _ in 0..1 + self.rng.below(6) {
                self.sentence(&mut out);
            }
            out.extend_from_slice(b"</p></div>\n");
            if self.rng.below(3) == 0 {
                self.code_block(&mut out);
            }
        }
        out.extend_from_slice(b"</body></html>\n");
        out
    }
}

/// Builds files totalling at least `bytes` bytes from `seed`.
pub fn build(seed: u64, bytes: u64) -> Vec<CorpusFile> {
    let mut rng = Rng::new(seed);
    let words = vocabulary(&mut rng, 3000);
    let phrases: Vec<String> = (0..400)
        .map(|_| {
            let n = 2 + rng.below(4);
            let ws: Vec<&str> = (0..n)
                .map(|_| words[zipf(&mut rng, 200)].as_str())
                .collect();
            ws.join(" ")
        })
        .collect();
    let mut header = b"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1.0\">\
<link rel=\"stylesheet\" href=\"../static.files/rustdoc.css\">\
<script src=\"../static.files/main.js\" defer></script>\n"
        .to_vec();
    header.extend_from_slice(b"<nav class=\"sidebar\"><ul>");
    for w in words.iter().take(40) {
        header.extend_from_slice(format!("<li><a href=\"{w}/index.html\">{w}</a></li>").as_bytes());
    }
    header.extend_from_slice(b"</ul></nav>\n");
    let mut g = Gen {
        rng,
        words,
        phrases,
        header,
    };
    let mut files = Vec::new();
    let mut total = 0u64;
    while total < bytes {
        // Log-uniform-ish sizes: 40% small, 40% mid-size, 20% large.
        let len = match g.rng.below(10) {
            0..=3 => 300 + g.rng.below(3700),
            4..=7 => 4096 + g.rng.below(252 << 10),
            _ => (256 << 10) + g.rng.below(3 << 20),
        }
        .min(bytes - total) as usize;
        let module = g.word().to_string();
        let title = format!("{module}::{}", g.word());
        let mut data = g.page(&title, len.saturating_sub(700));
        data.truncate(len.max(1));
        total += data.len() as u64;
        files.push(CorpusFile {
            name: format!("{:05}-{}.html", files.len(), title.replace("::", "-")),
            data,
        });
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corpus_is_deterministic_sized_and_compresses_3_to_20x() {
        let a = build(7, 8 << 20);
        let b = build(7, 8 << 20);
        let total: u64 = a.iter().map(|f| f.data.len() as u64).sum();
        assert_eq!(total, 8 << 20);
        assert!(a
            .iter()
            .zip(&b)
            .all(|(x, y)| x.name == y.name && x.data == y.data));
        let mut names: Vec<_> = a.iter().map(|f| &f.name).collect();
        names.dedup();
        assert_eq!(names.len(), a.len(), "names are unique");
        assert!(a.iter().any(|f| f.data.len() < 4096), "small files occur");
        assert!(
            a.iter().any(|f| f.data.len() > 1 << 20),
            "large files occur"
        );
        let all: Vec<u8> = a.iter().flat_map(|f| f.data.iter().copied()).collect();
        // Per file, as the store compresses them, and as one stream.
        let packed: usize = a.iter().map(|f| zstd_len(&f.data)).sum();
        for (what, z) in [("per file", packed), ("whole", zstd_len(&all))] {
            let ratio = all.len() as f64 / z as f64;
            assert!(
                (3.0..=20.0).contains(&ratio),
                "{what}: zstd-3 ratio {ratio:.2}"
            );
        }
        assert_ne!(build(8, 1 << 20)[0].data, a[0].data, "the seed matters");
    }

    fn zstd_len(b: &[u8]) -> usize {
        let p = kwq_zstd::Params::new().level(3).checksum(false);
        let mut c = kwq_zstd::ChunkCompressor::new(&p).expect("level 3 is valid");
        c.compress(b).expect("compress").frame.len()
    }
}
