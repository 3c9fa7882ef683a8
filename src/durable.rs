//! Careful file I/O, the one place pare opens files itself.
//!
//! - **Reading what it is given** (plans, seeds, saved plans, `pare.toml`):
//!   regular files only, up to a documented size; FIFOs, devices and
//!   directories are refused without blocking on them.
//! - **Writing what it owns**: atomically (a temp file created exclusively in
//!   the same folder, `sync_data`, rename, the folder synced), owner-only,
//!   never through a symlink.
//! - **Directories**: the ones pare creates are owner-only; one it did not
//!   create is left exactly as it is, and refused when others can write it.
//!
//! Nothing here knows what the files mean.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Largest plan file pare reads (about 230,000 recommendations).
pub const PLAN_LIMIT: u64 = 32 << 20;
/// Largest sandbox account (seed) file.
pub const ACCOUNT_LIMIT: u64 = 64 << 20;
/// Largest saved plan (`pare plan --out`).
pub const SAVED_PLAN_LIMIT: u64 = 256 << 20;
/// Largest `pare.toml`.
pub const CONFIG_LIMIT: u64 = 1 << 20;
/// Largest journal or run record pare reads back from its state.
pub const STATE_LIMIT: u64 = 1 << 30;

/// Why a file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("it is {0}, not a regular file")]
    NotAFile(&'static str),
    #[error("it is {size} bytes, more than the {limit} bytes pare reads for {what}")]
    TooLarge {
        size: u64,
        limit: u64,
        what: &'static str,
    },
    #[error("it is not UTF-8 text (invalid byte at offset {0})")]
    NotText(usize),
    #[error("it is not a text file (it holds a NUL byte at offset {0})")]
    Binary(usize),
    #[error(
        "it leads to {0}, outside {1}: pare reads files there only when given their path directly"
    )]
    Outside(PathBuf, PathBuf),
    #[error("it is {0}, a system pseudo-file, not a file anyone writes")]
    Pseudo(PathBuf),
    #[error("it changed while it was being opened (a link swapped?); nothing was read")]
    Raced,
    #[error(
        "it can be written by others (mode {0:o}): pare trusts its state only when only its owner can change it"
    )]
    Shared(u32),
}

impl ReadError {
    /// The OS error's kind, when there is one.
    pub fn kind(&self) -> Option<std::io::ErrorKind> {
        match self {
            ReadError::Io(e) => Some(e.kind()),
            _ => None,
        }
    }
}

/// What a non-regular file is, in words.
fn kind_of(meta: &std::fs::Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        return "a directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a named pipe";
        }
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    "not a regular file"
}

/// Opens `path` for reading without blocking (a FIFO would wait for a writer).
fn open_read(path: &Path, follow: bool) -> std::io::Result<File> {
    let mut o = OpenOptions::new();
    o.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        let nofollow = if follow { 0 } else { libc::O_NOFOLLOW };
        o.custom_flags(libc::O_NONBLOCK | nofollow);
    }
    #[cfg(not(unix))]
    let _ = follow;
    o.open(path)
}

fn read_file(file: File, limit: u64, what: &'static str) -> Result<Vec<u8>, ReadError> {
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(ReadError::NotAFile(kind_of(&meta)));
    }
    if meta.len() > limit {
        return Err(ReadError::TooLarge {
            size: meta.len(),
            limit,
            what,
        });
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // The file may grow while it is read: never take more than the limit.
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(ReadError::TooLarge {
            size: bytes.len() as u64,
            limit,
            what,
        });
    }
    Ok(bytes)
}

/// Where the file open as `file` (found at `path`) really is, checked to be
/// the same file (no link swapped between opening and looking), and not a
/// system pseudo-file (`/proc/self/environ` reports itself a regular file).
fn real_path(file: &File, path: &Path) -> Result<PathBuf, ReadError> {
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(ReadError::NotAFile(kind_of(&meta)));
    }
    let real = std::fs::canonicalize(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let (a, b) = (file.metadata()?, std::fs::metadata(&real)?);
        if (a.dev(), a.ino()) != (b.dev(), b.ino()) {
            return Err(ReadError::Raced);
        }
    }
    #[cfg(not(unix))]
    let _ = file;
    if ["/proc", "/sys", "/dev"]
        .iter()
        .any(|p| real.starts_with(p))
    {
        return Err(ReadError::Pseudo(real));
    }
    Ok(real)
}

/// Reads a file someone gave pare (`what` names it in errors: "a plan file"):
/// a regular file, at most `limit` bytes, not a system pseudo-file.
pub fn read_limited(path: &Path, limit: u64, what: &'static str) -> Result<Vec<u8>, ReadError> {
    let file = open_read(path, true)?;
    real_path(&file, path)?;
    read_file(file, limit, what)
}

/// [`read_limited`], confined: the file (after every link) must be inside
/// `folder`, checked on the file actually opened, so a link swapped in
/// between cannot lead out.
pub fn read_confined(
    path: &Path,
    folder: &Path,
    limit: u64,
    what: &'static str,
) -> Result<Vec<u8>, ReadError> {
    let file = open_read(path, true)?;
    let real = real_path(&file, path)?;
    let real_folder = std::fs::canonicalize(folder)?;
    if !real.starts_with(&real_folder) {
        return Err(ReadError::Outside(real, real_folder));
    }
    read_file(file, limit, what)
}

/// UTF-8 text from bytes read, refusing binary files (a NUL byte).
pub fn text(bytes: Vec<u8>) -> Result<String, ReadError> {
    if let Some(i) = bytes.iter().position(|b| *b == 0) {
        return Err(ReadError::Binary(i));
    }
    String::from_utf8(bytes).map_err(|e| ReadError::NotText(e.utf8_error().valid_up_to()))
}

/// [`read_limited`], as UTF-8 text.
pub fn read_text(path: &Path, limit: u64, what: &'static str) -> Result<String, ReadError> {
    text(read_limited(path, limit, what)?)
}

/// A file given on the command line or found in the working directory: a
/// path that stays inside the working directory by its words must stay
/// inside it after its links too (a committed link to `~/.aws/credentials`
/// or `/proc/self/environ` is refused); a path given outside it (absolute,
/// or with `..`) is read as given.
pub fn read_given(path: &Path, limit: u64, what: &'static str) -> Result<String, ReadError> {
    match path.to_str().filter(|p| lexically_inside(p)) {
        Some(_) => text(read_confined(path, Path::new("."), limit, what)?),
        None => read_text(path, limit, what),
    }
}

/// Reads a file pare owns in its state, never through a symlink, and only
/// if no one but its owner can change it.
pub fn read_owned(path: &Path) -> Result<Vec<u8>, ReadError> {
    let file = open_read(path, false)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let meta = file.metadata()?;
        // SAFETY: geteuid has no preconditions and cannot fail.
        let me = unsafe { libc::geteuid() };
        if meta.mode() & 0o022 != 0 || meta.uid() != me {
            return Err(ReadError::Shared(meta.mode() & 0o7777));
        }
    }
    read_file(file, STATE_LIMIT, "a state file")
}

#[cfg(unix)]
fn private(options: &mut OpenOptions) -> &mut OpenOptions {
    use std::os::unix::fs::OpenOptionsExt;
    options.mode(0o600).custom_flags(libc::O_NOFOLLOW)
}

#[cfg(not(unix))]
fn private(options: &mut OpenOptions) -> &mut OpenOptions {
    options
}

/// Replaces `path` with `bytes` atomically: readers see the old or the new
/// file, never a mix, even after a crash. The temp file is created
/// exclusively (a planted file or symlink is never written through).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = parent(path);
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let mut attempt = 0u32;
    let (tmp, mut f) = loop {
        let tmp = dir.join(format!(".{name}.tmp-{}-{attempt}", std::process::id()));
        match private(OpenOptions::new().write(true).create_new(true)).open(&tmp) {
            Ok(f) => break (tmp, f),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 64 => {
                // Left by a crash of an earlier process with our pid, or planted.
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    };
    // A file replaced keeps its mode (a plan a team made group-writable stays
    // so); a new one is owner-only.
    if let Ok(meta) = std::fs::symlink_metadata(path)
        && meta.is_file()
    {
        let _ = f.set_permissions(meta.permissions());
    }
    let written = f.write_all(bytes).and_then(|()| f.sync_data());
    drop(f);
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(dir)
}

/// Opens `path` for appending, creating it owner-only, never through a symlink.
pub fn open_append(path: &Path) -> std::io::Result<File> {
    let existed = path.symlink_metadata().is_ok();
    let f = private(OpenOptions::new().append(true).create(true)).open(path)?;
    if !existed {
        // The new name must survive a crash too.
        sync_dir(parent(path))?;
    }
    Ok(f)
}

/// Opens (creating owner-only) a file to lock, never through a symlink.
pub fn open_lock(path: &Path) -> std::io::Result<File> {
    private(
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false),
    )
    .open(path)
}

/// Why a directory cannot hold pare's state.
#[derive(Debug, thiserror::Error)]
pub enum DirError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{path} is not a directory")]
    NotADirectory { path: PathBuf },
    #[error(
        "{path} can be written by {who} (mode {mode:o}): anyone who can write it could change the journal pare trusts to undo changes"
    )]
    Shared {
        path: PathBuf,
        who: &'static str,
        mode: u32,
    },
    #[error("{path} belongs to another user (uid {owner})")]
    NotOwned { path: PathBuf, owner: u32 },
    #[error("{path} is a symbolic link inside pare's state; pare does not follow links there")]
    Link { path: PathBuf },
    #[error(
        "{} is a symbolic link (to {}), and pare does not take a link as its state directory: one committed to a checkout (or planted by a pull request) would send the journal, the lock and the sandbox account wherever it points; give the real path instead (`--state-dir DIR`, or [state] dir in pare.toml) if that is where pare's state belongs",
        crate::vocabulary::words::clean(&.path.display().to_string()),
        crate::vocabulary::words::clean(&.target.display().to_string())
    )]
    StateLink { path: PathBuf, target: PathBuf },
}

/// Makes sure `dir` can hold private state: creates it (and missing parents)
/// owner-only if it does not exist; if it does, leaves it exactly as it is
/// and refuses it when it is not ours, others can write it, or it is itself
/// a symbolic link (a `.pare` link in a checkout could come from anyone's
/// pull request). Links among its parents are the user's own paths.
pub fn state_dir(dir: &Path) -> Result<(), DirError> {
    match std::fs::symlink_metadata(dir) {
        Ok(meta) if meta.file_type().is_symlink() => Err(DirError::StateLink {
            path: dir.to_owned(),
            target: std::fs::read_link(dir)?,
        }),
        Ok(meta) => check_private(dir, &meta),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            create_dirs(dir)?;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// A folder inside the state directory: created owner-only, or, if it is
/// there, a real directory of ours (never a symlink).
pub fn inner_dir(dir: &Path) -> Result<(), DirError> {
    match std::fs::symlink_metadata(dir) {
        Ok(meta) if meta.file_type().is_symlink() => Err(DirError::Link {
            path: dir.to_owned(),
        }),
        Ok(meta) => check_private(dir, &meta),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            match mkdir(dir) {
                Ok(()) => Ok(()),
                // Made by a concurrent process between the two calls.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => inner_dir(dir),
                Err(e) => Err(e.into()),
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// A folder inside the state directory that must already be there: a real
/// directory of ours (never a symlink), that no one else can write.
pub fn check_inner_dir(dir: &Path) -> Result<(), DirError> {
    let meta = std::fs::symlink_metadata(dir)?;
    if meta.file_type().is_symlink() {
        return Err(DirError::Link {
            path: dir.to_owned(),
        });
    }
    check_private(dir, &meta)
}

fn check_private(dir: &Path, meta: &std::fs::Metadata) -> Result<(), DirError> {
    if !meta.is_dir() {
        return Err(DirError::NotADirectory {
            path: dir.to_owned(),
        });
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        // SAFETY: geteuid has no preconditions and cannot fail.
        let me = unsafe { libc::geteuid() };
        if meta.uid() != me {
            return Err(DirError::NotOwned {
                path: dir.to_owned(),
                owner: meta.uid(),
            });
        }
        let mode = meta.mode() & 0o7777;
        let who = match (mode & 0o020 != 0, mode & 0o002 != 0) {
            (_, true) => Some("everyone"),
            (true, false) => Some("its group"),
            _ => None,
        };
        if let Some(who) = who {
            return Err(DirError::Shared {
                path: dir.to_owned(),
                who,
                mode,
            });
        }
    }
    Ok(())
}

fn mkdir(dir: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)?;
    sync_dir(parent(dir))
}

/// Creates `dir` and its missing parents, each owner-only.
fn create_dirs(dir: &Path) -> std::io::Result<()> {
    let mut missing = Vec::new();
    let mut at = dir;
    while std::fs::symlink_metadata(at).is_err() {
        missing.push(at.to_owned());
        match at.parent() {
            Some(p) if !p.as_os_str().is_empty() => at = p,
            _ => break,
        }
    }
    for d in missing.iter().rev() {
        match mkdir(d) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn parent(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Makes a folder's entries (new names, renames) durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Whether a relative path stays in its folder by its words alone: not
/// empty, not absolute, no `..` (what can be checked without reading; links
/// are checked when the file is opened).
pub fn lexically_inside(path: &str) -> bool {
    let rel = Path::new(path);
    !path.is_empty()
        && !rel.is_absolute()
        && rel.components().all(|c| {
            matches!(
                c,
                std::path::Component::Normal(_) | std::path::Component::CurDir
            )
        })
}

/// An append-only log whose writes become durable together: what the run
/// journal and the sandbox's operation log are written to. A local file,
/// or (for shared state) a series of objects in a store.
pub trait AppendLog: Send {
    /// Appends bytes (whole lines); not yet durable.
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()>;
    /// Makes everything written so far durable; returns only then.
    fn sync(&mut self) -> std::io::Result<()>;
    /// A flush of everything written so far that runs without the log, so
    /// others go on writing while it waits on the disk (a local file: its
    /// descriptor, cloned). `None`: the caller syncs under its lock.
    fn flusher(&mut self) -> std::io::Result<Option<Flusher>> {
        Ok(None)
    }
}

/// Makes durable what was written to a log before it was made.
pub type Flusher = Box<dyn FnOnce() -> std::io::Result<()> + Send>;

/// An [`AppendLog`] in a local file.
pub struct FileLog {
    file: File,
    path: PathBuf,
}

impl FileLog {
    /// Opens (creating owner-only) the log at `path`.
    pub fn open(path: &Path) -> std::io::Result<FileLog> {
        Ok(FileLog {
            file: open_append(path)?,
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl AppendLog for FileLog {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.file.write_all(bytes)
    }

    fn sync(&mut self) -> std::io::Result<()> {
        self.file.sync_data()
    }

    fn flusher(&mut self) -> std::io::Result<Option<Flusher>> {
        let f = self.file.try_clone()?;
        Ok(Some(Box::new(move || f.sync_data())))
    }
}

/// The whole lines of a log's text: a torn last line (a crash mid-write,
/// never acknowledged) is dropped.
pub fn whole_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let complete = match text.rfind('\n') {
        Some(i) => &text[..=i],
        None => "",
    };
    complete
        .split_inclusive('\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_end_matches('\n')))
}

/// Named documents and logs kept beside a state (the sandbox account and
/// its operation log): the part of a state store that the floors below
/// the run logic may use. Names are plain file names (`sandbox.yaml`).
pub trait DocStore: Send + Sync {
    /// Where the documents live, for messages (`.pare`, `s3://bucket/prefix`).
    fn location(&self) -> String;
    /// A document's bytes, if it exists.
    fn read_doc(&self, name: &str) -> std::io::Result<Option<Vec<u8>>>;
    /// Replaces a document atomically.
    fn write_doc(&self, name: &str, bytes: &[u8]) -> std::io::Result<()>;
    /// Removes a document (and is fine if it was not there).
    fn remove_doc(&self, name: &str) -> std::io::Result<()>;
    /// Opens a log for appending, creating it.
    fn open_log(&self, name: &str) -> std::io::Result<Box<dyn AppendLog>>;
    /// A log's text, as written (readers drop a torn tail), if it exists.
    fn read_log(&self, name: &str) -> std::io::Result<Option<String>>;
    /// Removes a log (and is fine if it was not there).
    fn remove_log(&self, name: &str) -> std::io::Result<()>;
    /// The names of every document and log (see [`is_log_name`]).
    fn names(&self) -> std::io::Result<Vec<String>>;
}

/// Whether a document name is a log's (`sandbox.log`, `sandbox.log.3`).
pub fn is_log_name(name: &str) -> bool {
    name.ends_with(".log")
        || name
            .rsplit_once(".log.")
            .is_some_and(|(_, n)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
}

/// A [`DocStore`] in a local directory (the state directory).
#[derive(Debug, Clone)]
pub struct DirDocs {
    dir: PathBuf,
}

impl DirDocs {
    /// Documents in `dir`, which is made ready with [`state_dir`].
    pub fn open(dir: &Path) -> Result<DirDocs, DirError> {
        state_dir(dir)?;
        Ok(DirDocs {
            dir: dir.to_owned(),
        })
    }

    fn path(&self, name: &str) -> std::io::Result<PathBuf> {
        let plain = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
            && !name.starts_with('.');
        if !plain {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("`{name}` is not a plain document name"),
            ));
        }
        Ok(self.dir.join(name))
    }
}

fn not_found_is_none<T>(r: Result<T, ReadError>) -> std::io::Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(ReadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(ReadError::Io(e)) => Err(e),
        Err(other) => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            other.to_string(),
        )),
    }
}

fn remove(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => sync_dir(parent(path)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

impl DocStore for DirDocs {
    fn location(&self) -> String {
        self.dir.display().to_string()
    }

    fn read_doc(&self, name: &str) -> std::io::Result<Option<Vec<u8>>> {
        not_found_is_none(read_owned(&self.path(name)?))
    }

    fn write_doc(&self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        write_atomic(&self.path(name)?, bytes)
    }

    fn remove_doc(&self, name: &str) -> std::io::Result<()> {
        remove(&self.path(name)?)
    }

    fn open_log(&self, name: &str) -> std::io::Result<Box<dyn AppendLog>> {
        Ok(Box::new(FileLog::open(&self.path(name)?)?))
    }

    fn read_log(&self, name: &str) -> std::io::Result<Option<String>> {
        let bytes = not_found_is_none(read_owned(&self.path(name)?))?;
        bytes
            .map(|b| {
                String::from_utf8(b).map_err(|e| {
                    std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string())
                })
            })
            .transpose()
    }

    fn remove_log(&self, name: &str) -> std::io::Result<()> {
        remove(&self.path(name)?)
    }

    fn names(&self) -> std::io::Result<Vec<String>> {
        let mut names: Vec<String> = std::fs::read_dir(&self.dir)?
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            // The lock is the store's own; names starting with a dot are
            // temporary files of atomic writes.
            .filter(|n| n != "lock" && self.path(n).is_ok())
            .collect();
        names.sort();
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_replace_and_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temp file left behind");
    }

    #[test]
    fn reads_refuse_devices_pipes_directories_and_big_files() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'x'; 100]).unwrap();
        assert!(matches!(
            read_limited(&big, 99, "a test file"),
            Err(ReadError::TooLarge { size: 100, .. })
        ));
        assert_eq!(read_limited(&big, 100, "a test file").unwrap().len(), 100);
        assert!(matches!(
            read_limited(dir.path(), 100, "x"),
            Err(ReadError::NotAFile("a directory"))
        ));
        #[cfg(unix)]
        {
            assert!(matches!(
                read_limited(Path::new("/dev/zero"), 100, "x"),
                Err(ReadError::NotAFile("a character device"))
            ));
            let fifo = dir.path().join("fifo");
            let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
            // SAFETY: a valid NUL-terminated path.
            assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
            assert!(matches!(
                read_limited(&fifo, 100, "x"),
                Err(ReadError::NotAFile("a named pipe"))
            ));
        }
    }

    #[cfg(unix)]
    #[test]
    fn shared_directories_are_refused_and_left_alone() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let shared = dir.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
        assert!(matches!(
            state_dir(&shared),
            Err(DirError::Shared {
                who: "everyone",
                ..
            })
        ));
        let mode = std::fs::metadata(&shared).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o1777, "the sticky bit and mode are untouched");
        // A new one is created owner-only, parents included.
        let fresh = dir.path().join("a/b/state");
        state_dir(&fresh).unwrap();
        for d in [dir.path().join("a"), fresh.clone()] {
            let m = std::fs::metadata(&d).unwrap().permissions().mode() & 0o777;
            assert_eq!(m, 0o700, "{}", d.display());
        }
        // Inside the state, links are not followed.
        let inner = fresh.join("runs");
        std::os::unix::fs::symlink(&shared, &inner).unwrap();
        assert!(matches!(inner_dir(&inner), Err(DirError::Link { .. })));
    }

    #[cfg(unix)]
    #[test]
    fn a_state_directory_that_is_a_link_is_refused_naming_where_it_points() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        state_dir(&real).unwrap();
        let link = dir.path().join(".pare");
        std::os::unix::fs::symlink("real\n\u{1b}[2Jx", &link).unwrap();
        let err = state_dir(&link).unwrap_err();
        assert!(matches!(err, DirError::StateLink { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains("is a symbolic link (to real\\n\\u{1b}[2Jx)"),
            "{text}"
        );
        assert!(!text.contains('\n') && !text.contains('\u{1b}'), "{text}");
        assert!(text.contains("give the real path instead"), "{text}");
        // Even to a private directory of ours, and even when it leads nowhere.
        std::fs::remove_file(&link).unwrap();
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert!(matches!(state_dir(&link), Err(DirError::StateLink { .. })));
        assert!(matches!(
            DirDocs::open(&link),
            Err(DirError::StateLink { .. })
        ));
        // A link among its parents is the user's own path.
        let parent = dir.path().join("parent");
        std::os::unix::fs::symlink(dir.path(), &parent).unwrap();
        state_dir(&parent.join("real")).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn confined_reads_check_the_file_actually_opened() {
        let dir = tempfile::tempdir().unwrap();
        let inside = dir.path().join("in");
        std::fs::create_dir(&inside).unwrap();
        std::fs::write(inside.join("ok.yaml"), "a: 1\n").unwrap();
        std::fs::write(dir.path().join("secret"), "s").unwrap();
        std::os::unix::fs::symlink("../secret", inside.join("out.yaml")).unwrap();
        std::os::unix::fs::symlink("ok.yaml", inside.join("alias.yaml")).unwrap();
        assert!(read_confined(&inside.join("ok.yaml"), &inside, 100, "x").is_ok());
        assert!(read_confined(&inside.join("alias.yaml"), &inside, 100, "x").is_ok());
        assert!(matches!(
            read_confined(&inside.join("out.yaml"), &inside, 100, "x"),
            Err(ReadError::Outside(..))
        ));
        std::os::unix::fs::symlink("/proc/self/environ", inside.join("env.yaml")).unwrap();
        assert!(matches!(
            read_limited(&inside.join("env.yaml"), 1 << 20, "x"),
            Err(ReadError::Pseudo(_))
        ));
        assert!(matches!(text(b"a\0b".to_vec()), Err(ReadError::Binary(1))));
    }

    #[test]
    fn torn_tails_are_dropped() {
        let lines: Vec<_> = whole_lines("a\nb\nc").collect();
        assert_eq!(lines, [(1, "a"), (2, "b")]);
        assert_eq!(whole_lines("").count(), 0);
        assert_eq!(whole_lines("x").count(), 0);
    }
}
