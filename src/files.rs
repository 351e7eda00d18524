//! Small-file IO: capped reads, crash-safe writes, names for damaged files, and IO wording.

use std::fs::{self, File};
use std::io::Write;
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

/// `<name>.corrupt-<UTC timestamp>` beside `path`.
pub fn aside_name(path: &Path) -> PathBuf {
    let stamp = time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .unwrap_or_default();
    PathBuf::from(format!("{}.corrupt-{stamp}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

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
