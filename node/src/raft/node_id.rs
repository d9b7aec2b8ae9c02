//! A member's Raft id: a random non-zero `u64` created together with the
//! Raft data directory and stored in it (`<data-dir>/raft/node-id`).
//!
//! It is never derived from an address or a pod ordinal: a member whose
//! volume was wiped comes back with a new id and joins as a new member,
//! because re-using an id with an empty log can split a cluster (openraft,
//! "Node IDs must not be reused").

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// File holding the id, in the Raft directory.
pub const ID_FILE: &str = "node-id";

/// The Raft directory inside the data directory.
pub fn raft_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("raft")
}

/// Reads the id in `dir`, or creates the directory with a new random id when
/// it does not exist yet. A directory that holds Raft files but no id is
/// refused: starting with a fresh id over an old log would be a lie.
pub fn load_or_create(dir: &Path) -> Result<u64> {
    let path = dir.join(ID_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => parse(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let has_files = fs::read_dir(dir).map(|mut d| d.next().is_some()).unwrap_or(false);
            if has_files {
                return Err(Error::Config(format!(
                    "{} holds Raft data but no {ID_FILE}; refusing to invent a new id for an old log",
                    dir.display()
                )));
            }
            fs::create_dir_all(dir)?;
            let id = new_id();
            write_atomically(&path, &format!("{id}\n"))?;
            Ok(id)
        }
        Err(e) => Err(Error::Io(e)),
    }
}

/// A random non-zero id (0 means "no id" in member reports).
fn new_id() -> u64 {
    loop {
        let id = fastrand::u64(..);
        if id != 0 {
            return id;
        }
    }
}

/// Why a stored Raft id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// 0 means "no id" in member reports.
    #[error("the Raft id must not be 0")]
    Zero,
    /// Not a number.
    #[error("not a Raft id: {0}")]
    NotANumber(#[from] std::num::ParseIntError),
}

fn parse(text: &str) -> std::result::Result<u64, IdError> {
    match text.trim().parse::<u64>()? {
        0 => Err(IdError::Zero),
        id => Ok(id),
    }
}

/// Writes via a temporary file, fsync and rename, so a crash leaves either
/// no id or the whole id.
fn write_atomically(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        // Make the rename itself durable.
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_then_kept() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = raft_dir(tmp.path());
        let id = load_or_create(&dir).expect("created");
        assert_ne!(id, 0);
        assert_eq!(load_or_create(&dir).expect("read"), id);
        // A wiped directory gets a different id (with overwhelming probability).
        fs::remove_dir_all(&dir).expect("wipe");
        assert_ne!(load_or_create(&dir).expect("created again"), id);
    }

    #[test]
    fn an_old_log_without_an_id_is_refused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = raft_dir(tmp.path());
        fs::create_dir_all(&dir).expect("mkdir");
        fs::write(dir.join("log.redb"), b"x").expect("write");
        assert!(matches!(load_or_create(&dir), Err(Error::Config(_))));
        fs::write(dir.join(ID_FILE), b"zero").expect("write");
        assert!(load_or_create(&dir).is_err());
        fs::write(dir.join(ID_FILE), b"0\n").expect("write");
        assert!(load_or_create(&dir).is_err());
        fs::write(dir.join(ID_FILE), b"42\n").expect("write");
        assert_eq!(load_or_create(&dir).expect("read"), 42);
    }
}
