//! Small-file IO: capped reads, crash-safe writes, checked files (a header or a sum that tells
//! whole from damaged), names for damaged files, and IO wording.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// A config or secret file is small: past this it is refused (`/dev/zero` would never end).
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// At most `max` + 1 bytes of `reader`: more than `max` read back means the source is too large.
pub fn read_capped(reader: impl std::io::Read, max: u64) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(reader, max + 1), &mut bytes)?;
    Ok(bytes)
}

/// A token file (web identity, container authorization) is small; past this it is refused.
pub const MAX_TOKEN_BYTES: u64 = 64 * 1024;

/// The text of `path` (`what` names it in errors: the variable or key it came from).
/// A missing file is Ok(None) when `missing_ok`. A FIFO, a device (`/dev/zero`) or a
/// file over `max` bytes is refused at once, never waited on or read to the end.
pub fn read_small(
    what: &str,
    path: &Path,
    max: u64,
    missing_ok: bool,
) -> Result<Option<String>, String> {
    let place = format!("{what} {}", path.display());
    let cannot = |e: std::io::Error| format!("{place}: cannot read: {}", plain_io(&e));
    // Non-blocking open: opening a FIFO with no writer would otherwise wait forever.
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && missing_ok => return Ok(None),
        Err(e) => return Err(cannot(e)),
    };
    if !file.metadata().map_err(cannot)?.is_file() {
        return Err(format!("{place}: not a regular file"));
    }
    let bytes = read_capped(file, max).map_err(cannot)?;
    if bytes.len() as u64 > max {
        return Err(format!("{place}: larger than {} KiB", max / 1024));
    }
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| format!("{place}: expected UTF-8 text"))
}

/// An io::Error as a short phrase without the "(os error N)" tail.
pub fn plain_io(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// Temp file, fsync, rename, fsync the directory: a crash leaves the old or the new file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let tmp = PathBuf::from(format!("{}.tmp", path.display()));
    let result = File::create(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|_| f.sync_all()))
        .and_then(|_| fs::rename(&tmp, path));
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(write_error(path, &e));
    }
    sync_dir(path.parent().unwrap_or(Path::new(".")));
    Ok(())
}

pub fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Opens a state file for reading, never waiting (a FIFO put in its place would block an
/// open forever): Ok(None) when it is missing, an error naming it when it is no regular file
/// or cannot be read.
pub fn open_regular(path: &Path) -> Result<Option<File>, String> {
    let file = match fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(read_error(path, &e)),
    };
    match file.metadata() {
        Ok(m) if m.is_file() => Ok(Some(file)),
        Ok(_) => Err(format!(
            "{}: cannot read: not a regular file",
            path.display()
        )),
        Err(e) => Err(read_error(path, &e)),
    }
}

/// The bytes of a state file (`open_regular`), None when it is missing.
pub fn read_regular(path: &Path) -> Result<Option<Vec<u8>>, String> {
    let Some(mut file) = open_regular(path)? else {
        return Ok(None);
    };
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut file, &mut bytes).map_err(|e| read_error(path, &e))?;
    Ok(Some(bytes))
}

/// "`path`: cannot read: why" (a refused read is no damage: the file is left as it is).
pub fn read_error(path: &Path, e: &std::io::Error) -> String {
    format!("{}: cannot read: {}", path.display(), plain_io(e))
}

pub fn write_error(path: &Path, e: &std::io::Error) -> String {
    let why = match e.raw_os_error() {
        Some(libc::EFBIG) => "file too large (file size limit reached)".to_string(),
        _ => plain_io(e),
    };
    format!(
        "cannot write {}: {why}; the previous state is intact",
        path.display()
    )
}

/// Renames a damaged file to `<name>.corrupt-<UTC timestamp>` beside it.
pub fn move_aside(path: &Path) -> Result<PathBuf, String> {
    let aside = aside_name(path);
    fs::rename(path, &aside).map_err(|e| write_error(&aside, &e))?;
    Ok(aside)
}

/// Keeps a damaged file as it is under its aside name and puts `good` (the part still whole)
/// in its place; each step leaves either file usable. Returns the aside name.
pub fn keep_aside_and_replace(path: &Path, good: &[u8]) -> Result<PathBuf, String> {
    let aside = aside_name(path);
    fs::hard_link(path, &aside)
        .or_else(|_| fs::copy(path, &aside).map(|_| ()))
        .map_err(|e| write_error(&aside, &e))?;
    write_atomic(path, good)?;
    Ok(aside)
}

/// Whether a file name is one `aside_name` made.
pub fn is_aside(name: &str) -> bool {
    name.contains(".corrupt-")
}

/// `<name>.corrupt-<UTC timestamp>` beside `path`.
pub fn aside_name(path: &Path) -> PathBuf {
    let stamp = time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .unwrap_or_default();
    let first = PathBuf::from(format!("{}.corrupt-{stamp}", path.display()));
    if !first.exists() {
        return first;
    }
    // Twice in one second (a file damaged again at once): never over an earlier one.
    (2..)
        .map(|n| PathBuf::from(format!("{}-{n}", first.display())))
        .find(|p| !p.exists())
        .unwrap_or(first)
}

/// A 64-bit hash of a line (or of a small file's text): 8 bytes at a time, each word mixed in
/// by a xor, a multiplication and a shift (each a bijection, so one changed word always
/// changes it), the length first and an avalanche last. It finds damage, not forgery; about
/// one instruction a byte.
pub fn hash(bytes: &[u8]) -> u64 {
    let mut h = 0x243f_6a88_85a3_08d3 ^ (bytes.len() as u64).wrapping_mul(SUM_K);
    // Words read by pointer, not through slice helpers: a new call site of those (split_at)
    // makes the optimizer stop inlining them into serde_json's hot loops (measured: +3%).
    let words = bytes.len() / 8;
    let p = bytes.as_ptr();
    for i in 0..words {
        // SAFETY: i * 8 + 8 <= bytes.len(); an unaligned read of plain bytes.
        let w = unsafe { std::ptr::read_unaligned(p.add(i * 8) as *const u64) };
        h = mix(h ^ u64::from_le(w));
    }
    let mut last = 0u64;
    for (k, b) in bytes[words * 8..].iter().enumerate() {
        last |= u64::from(*b) << (8 * k);
    }
    avalanche(mix(h ^ last))
}

const SUM_K: u64 = 0x9e37_79b9_7f4a_7c15;

#[inline]
fn mix(h: u64) -> u64 {
    let h = h.wrapping_mul(SUM_K);
    h ^ (h >> 29)
}

fn avalanche(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// The sum of a checked file's lines: each line's `hash`, mixed with its place, added up.
/// A line changed, lost, added or moved changes it; a line's hash is taken once, so a line
/// copied from one checked file to another (`promote`) is not hashed again.
#[derive(Clone, Copy, Default)]
pub struct Sum {
    acc: u64,
    lines: u64,
}

impl Sum {
    /// Adds the next line (without its newline).
    pub fn add(&mut self, line: &[u8]) {
        self.add_hash(hash(line));
    }

    /// Adds the next line by its `hash`.
    pub fn add_hash(&mut self, h: u64) {
        let placed = avalanche(h ^ self.lines.wrapping_mul(0xd6e8_feb8_6659_fd93));
        self.acc = self.acc.wrapping_add(placed);
        self.lines += 1;
    }

    pub fn value(&self) -> u64 {
        self.acc
    }
}

/// Bytes of the first line of a checked file, newline included: `{"lines":N,"sum":"…"}`
/// padded with spaces, so that it can be written first and filled in once the lines are.
pub const HEADER_BYTES: usize = 64;
const HEADER_START: &[u8] = b"{\"lines\":";

/// The header line of a checked file of `lines` lines whose bytes (each with its newline) sum to `sum`.
pub fn header(lines: usize, sum: u64) -> Vec<u8> {
    let mut h = format!("{{\"lines\":{lines},\"sum\":\"{sum:016x}\"}}").into_bytes();
    h.resize(HEADER_BYTES - 1, b' ');
    h.push(b'\n');
    h
}

/// The count and sum of a header line as `header` writes it (trailing spaces allowed).
pub fn parse_header(line: &[u8]) -> Option<(usize, u64)> {
    // Indexes, not strip_prefix: see `hash`.
    const SUM: &[u8] = b",\"sum\":\"";
    if !line.starts_with(HEADER_START) {
        return None;
    }
    let start = HEADER_START.len();
    let digits = line[start..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    let lines = std::str::from_utf8(&line[start..start + digits])
        .ok()?
        .parse()
        .ok()?;
    let at = start + digits;
    if !line[at..].starts_with(SUM) || line.len() < at + SUM.len() + 18 {
        return None;
    }
    let hex = &line[at + SUM.len()..at + SUM.len() + 16];
    let sum = u64::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
    let tail = &line[at + SUM.len() + 16..];
    (tail.starts_with(b"\"}") && tail[2..].iter().all(|b| *b == b' ')).then_some((lines, sum))
}

/// The longest line a state file holds: a longer one is damage and is never read whole (a
/// file of zeros, or one huge line, must not take the memory of a small pod).
pub const MAX_LINE: usize = 1 << 20;

/// A line as `Lines` reads it.
#[derive(Debug, PartialEq, Eq)]
pub enum Line<'a> {
    /// A line and its newline (not included).
    Whole(&'a [u8]),
    /// The last bytes of the file, with no newline after them.
    Torn(&'a [u8]),
    /// A line longer than `MAX_LINE` (skipped to its end, never held).
    Long,
}

/// The lines of a reader, one buffer for all, each at most `MAX_LINE` bytes.
pub struct Lines<R> {
    reader: R,
    buf: Vec<u8>,
    offset: u64,
}

impl<R: BufRead> Lines<R> {
    pub fn new(reader: R) -> Lines<R> {
        Lines {
            reader,
            buf: Vec::new(),
            offset: 0,
        }
    }

    /// Bytes read so far: where the next line starts.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    #[allow(clippy::should_implement_trait)] // lends its buffer: no Iterator
    pub fn next(&mut self) -> std::io::Result<Option<Line<'_>>> {
        let mut read = |buf: &mut Vec<u8>| {
            buf.clear();
            std::io::Read::take(&mut self.reader, MAX_LINE as u64 + 1).read_until(b'\n', buf)
        };
        let n = read(&mut self.buf)?;
        self.offset += n as u64;
        if n == 0 {
            return Ok(None);
        }
        if self.buf.last() == Some(&b'\n') {
            self.buf.pop();
            return Ok(Some(Line::Whole(&self.buf)));
        }
        if n <= MAX_LINE {
            return Ok(Some(Line::Torn(&self.buf)));
        }
        // Overlong: the rest of it is read a buffer at a time and dropped.
        loop {
            let n = read(&mut self.buf)?;
            self.offset += n as u64;
            if n == 0 || self.buf.last() == Some(&b'\n') {
                return Ok(Some(Line::Long));
            }
        }
    }
}

/// What reading a checked file found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checked {
    /// Whole: `lines` lines (the header not counted); `extra` is where bytes that are not
    /// part of it begin, when something follows its last line (appended bytes); `sum` the
    /// header's, None when it has no header (an earlier version wrote it).
    Whole {
        lines: usize,
        extra: Option<u64>,
        sum: Option<u64>,
    },
    /// Damaged: what is wrong, in words ("holds 3 of the 5 lines its header names").
    Damaged(String),
}

/// Reads the checked file at `path` a line at a time: with a header, its lines must be as
/// many as the header says and sum to its sum; without one (a file of an earlier version),
/// each line must pass `legacy`, and none may be cut short. `each` gets every line (without
/// its newline) and its `hash` as it is read, before the verdict. A missing file is
/// Ok(None); a file the system refuses to read is an Err naming it (no damage: it is tried
/// again later).
pub fn read_checked(
    path: &Path,
    legacy: &dyn Fn(&[u8]) -> bool,
    each: &mut dyn FnMut(&[u8], u64),
) -> Result<Option<Checked>, String> {
    let Some(file) = open_regular(path)? else {
        return Ok(None);
    };
    let damaged = |what: String| Ok(Some(Checked::Damaged(what)));
    let long = |n: usize| format!("its line {n} is longer than {} KiB", MAX_LINE / 1024);
    let mut lines = Lines::new(BufReader::with_capacity(64 * 1024, file));
    let cannot = |e: std::io::Error| read_error(path, &e);
    let header = match lines.next().map_err(cannot)? {
        None => return damaged("is empty".into()),
        Some(Line::Long) => return damaged(long(1)),
        Some(Line::Whole(l)) if l.starts_with(HEADER_START) => parse_header(l).ok_or(()),
        Some(Line::Torn(l)) if l.starts_with(HEADER_START) => Err(()),
        Some(_) => {
            // An earlier version's file: every line must read as what it holds.
            let mut lines = Lines::new(BufReader::new(File::open(path).map_err(cannot)?));
            let mut count = 0;
            while let Some(line) = lines.next().map_err(cannot)? {
                count += 1;
                match line {
                    Line::Whole(l) if std::str::from_utf8(l).is_ok() && legacy(l) => {
                        each(l, hash(l))
                    }
                    // A torn last line begins as a line does; anything else is no line at all.
                    Line::Torn(l) if l.starts_with(b"{") => {
                        return damaged(format!("its line {count} is cut short"));
                    }
                    Line::Long => return damaged(long(count)),
                    _ => {
                        return damaged(format!(
                            "its line {count} is neither a header nor a readable line"
                        ));
                    }
                }
            }
            return Ok(Some(Checked::Whole {
                lines: count,
                extra: None,
                sum: None,
            }));
        }
    };
    let Ok((want, sum)) = header else {
        return damaged("its header (line 1) is damaged".into());
    };
    let mut got = Sum::default();
    for count in 0..want {
        let held =
            |how: &str| format!("holds {count} of the {want} lines its header names ({how})");
        match lines.next().map_err(cannot)? {
            Some(Line::Whole(l)) => {
                let h = hash(l);
                got.add_hash(h);
                each(l, h);
            }
            None => return damaged(held("cut short")),
            Some(Line::Torn(_)) => return damaged(held("its last line is cut short")),
            Some(Line::Long) => return damaged(long(count + 2)),
        }
    }
    if got.value() != sum {
        return damaged("its lines do not match the checksum in its header".into());
    }
    let end = lines.offset();
    let more = lines.next().map_err(cannot)?.is_some();
    Ok(Some(Checked::Whole {
        lines: want,
        extra: more.then_some(end),
        sum: Some(sum),
    }))
}

/// The text of a sealed JSON file: `body` is the object without its closing brace; a `sum`
/// of it is added last, so that any change to it shows.
pub fn sealed_json(body: &str) -> String {
    format!("{body},\"sum\":\"{:016x}\"}}\n", hash(body.as_bytes()))
}

/// Checks a sealed JSON file's bytes against their sum: Ok(true) whole, Ok(false) with no
/// sum at all (an earlier version's file, for the caller to judge), Err(what is wrong).
pub fn unseal_json(bytes: &[u8]) -> Result<bool, String> {
    const KEY: &[u8] = b",\"sum\":\"";
    let text = bytes.trim_ascii_end();
    let Some(at) = text.windows(KEY.len()).rposition(|w| w == KEY) else {
        return Ok(false);
    };
    let rest = &text[at + KEY.len()..];
    let sum = (rest.len() == 18 && rest.ends_with(b"\"}"))
        .then(|| std::str::from_utf8(&rest[..16]).ok())
        .flatten()
        .and_then(|h| u64::from_str_radix(h, 16).ok());
    match sum {
        Some(sum) if sum == hash(&text[..at]) => Ok(true),
        Some(_) => Err("does not match its checksum".into()),
        None => Err("does not end with its checksum (cut, or bytes added after it)".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "sab-checked-{}-{}",
            std::process::id(),
            getrandom::u64().unwrap()
        ));
        fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    fn checked_file(lines: &[&str]) -> Vec<u8> {
        let mut sum = Sum::default();
        let mut body = Vec::new();
        for l in lines {
            body.extend_from_slice(l.as_bytes());
            body.push(b'\n');
            sum.add(l.as_bytes());
        }
        let mut out = header(lines.len(), sum.value());
        out.extend(body);
        out
    }

    fn read(path: &Path) -> Option<Checked> {
        read_checked(path, &|l| l.starts_with(b"{"), &mut |_, _| ()).unwrap()
    }

    #[test]
    fn the_hash_changes_with_any_byte_and_the_sum_with_any_line_or_its_place() {
        let bytes: Vec<u8> = (0..300u32).map(|i| (i * 7 + 3) as u8).collect();
        let whole = hash(&bytes);
        for i in [0, 7, 8, 150, 299] {
            let mut other = bytes.clone();
            other[i] ^= 0x80;
            assert_ne!(hash(&other), whole, "byte {i}");
        }
        assert_ne!(hash(&bytes[..299]), whole);
        assert_ne!(hash(b""), hash(b"\0"));
        assert_ne!(hash(b"\0"), hash(b"\0\0"));
        let sum = |lines: &[&[u8]]| {
            let mut s = Sum::default();
            lines.iter().for_each(|l| s.add(l));
            s.value()
        };
        let abc = sum(&[b"a", b"b", b"c"]);
        assert_ne!(sum(&[b"a", b"c", b"b"]), abc, "moved");
        assert_ne!(sum(&[b"a", b"b"]), abc, "lost");
        assert_ne!(sum(&[b"a", b"b", b"c", b"c"]), abc, "added");
        assert_ne!(sum(&[b"a", b"b", b"d"]), abc, "changed");
        assert_eq!(sum(&[b"a", b"b", b"c"]), abc);
    }

    #[test]
    fn a_checked_file_is_whole_or_names_its_damage() {
        let path = tmp("f.jsonl");
        let good = checked_file(&["{\"a\":1}", "{\"b\":2}", "{\"c\":3}"]);
        let sum = parse_header(&good[..HEADER_BYTES - 1]).map(|(_, s)| s);
        assert_eq!(good[..HEADER_BYTES].len(), HEADER_BYTES);
        fs::write(&path, &good).unwrap();
        let mut seen = Vec::new();
        let got = read_checked(&path, &|_| false, &mut |l, _| seen.push(l.to_vec())).unwrap();
        assert_eq!(
            got,
            Some(Checked::Whole {
                lines: 3,
                extra: None,
                sum
            })
        );
        assert_eq!(
            seen,
            [
                b"{\"a\":1}".to_vec(),
                b"{\"b\":2}".to_vec(),
                b"{\"c\":3}".to_vec()
            ]
        );
        let damaged = |bytes: &[u8]| {
            fs::write(&path, bytes).unwrap();
            match read(&path) {
                Some(Checked::Damaged(what)) => what,
                other => panic!("{other:?} for {:?}", String::from_utf8_lossy(bytes)),
            }
        };
        let lines_end = good.len() - b"{\"c\":3}\n".len();
        assert_eq!(
            damaged(&good[..lines_end]),
            "holds 2 of the 3 lines its header names (cut short)"
        );
        assert_eq!(
            damaged(&good[..good.len() - 3]),
            "holds 2 of the 3 lines its header names (its last line is cut short)"
        );
        assert_eq!(damaged(b""), "is empty");
        assert_eq!(
            damaged(&vec![0; good.len()]),
            "its line 1 is neither a header nor a readable line"
        );
        assert_eq!(damaged(&good[..20]), "its header (line 1) is damaged");
        let mut bad = good.clone();
        bad[HEADER_BYTES + 3] = 0xff;
        assert_eq!(
            damaged(&bad),
            "its lines do not match the checksum in its header"
        );
        let mut bad = good.clone();
        bad[HEADER_BYTES + 5] = b'7';
        assert_eq!(
            damaged(&bad),
            "its lines do not match the checksum in its header"
        );
        // Appended bytes: the lines are whole, and where the rest starts is said.
        let mut more = good.clone();
        more.extend_from_slice(b"garbage");
        fs::write(&path, &more).unwrap();
        assert_eq!(
            read(&path),
            Some(Checked::Whole {
                lines: 3,
                extra: Some(good.len() as u64),
                sum
            })
        );
        // An earlier version's file: every line readable.
        fs::write(&path, "{\"a\":1}\n{\"b\":2}\n").unwrap();
        assert_eq!(
            read(&path),
            Some(Checked::Whole {
                lines: 2,
                extra: None,
                sum: None
            })
        );
        assert_eq!(
            damaged(b"{\"a\":1}\nxyz\n"),
            "its line 2 is neither a header nor a readable line"
        );
        assert_eq!(damaged(b"{\"a\":1}\n{\"b\""), "its line 2 is cut short");
        fs::remove_file(&path).unwrap();
        assert_eq!(read(&path), None);
        fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn a_sealed_json_file_shows_any_change() {
        let text = sealed_json("{\"version\":2,\"delivered\":[\"2026-11-20\"]");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["delivered"][0], "2026-11-20");
        assert_eq!(unseal_json(text.as_bytes()), Ok(true));
        let changed = text.replace("2026-11-20", "2026-11-21");
        assert_eq!(
            unseal_json(changed.as_bytes()),
            Err("does not match its checksum".into())
        );
        assert_eq!(unseal_json(b"{\"version\":1,\"delivered\":[]}"), Ok(false));
        let cut = &text[..text.len() - 5];
        assert_eq!(
            unseal_json(cut.as_bytes()),
            Err("does not end with its checksum (cut, or bytes added after it)".into())
        );
    }

    #[test]
    fn devices_fifos_and_large_files_are_refused_by_name() {
        let dir = std::env::temp_dir().join(format!("sab-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let e = read_small(
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            Path::new("/dev/zero"),
            64,
            false,
        );
        assert_eq!(
            e.unwrap_err(),
            "AWS_WEB_IDENTITY_TOKEN_FILE /dev/zero: not a regular file"
        );
        let fifo = dir.join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = read_small("token file", &fifo, 64, false).unwrap_err();
        assert!(e.ends_with("fifo: not a regular file"), "{e}");
        let big = dir.join("big");
        std::fs::write(&big, vec![b'a'; 2049]).unwrap();
        let e = read_small("token file", &big, 2048, false).unwrap_err();
        assert!(e.ends_with("big: larger than 2 KiB"), "{e}");
        std::fs::write(&big, vec![b'a'; 2048]).unwrap();
        assert_eq!(
            read_small("t", &big, 2048, false).unwrap().unwrap().len(),
            2048
        );
        assert_eq!(read_small("t", &dir.join("none"), 9, true), Ok(None));
        let e = read_small("t", &dir.join("none"), 9, false).unwrap_err();
        assert!(e.contains("none: cannot read: No such file"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
