//! Where `panebus up` keeps its private files.
//!
//! Two directories, following the XDG base directory spec: the **runtime dir**
//! (`$XDG_RUNTIME_DIR/panebus`, else `/tmp/panebus-$UID`) holds the managed Redis socket
//! and pidfile, which must not outlive a reboot; the **state dir**
//! (`$XDG_STATE_HOME/panebus`, else `~/.local/state/panebus`) holds the Redis data
//! (`redis/`, append-only file) and the records of the sessions `up` started
//! (`sessions/`), which must. Both are created with mode 0700; a runtime dir under `/tmp`
//! owned by another user is refused, since whoever owns it could read the socket.

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use thiserror::Error;

/// A private directory that cannot be used.
#[derive(Debug, Error)]
pub enum PathsError {
    /// Neither `XDG_STATE_HOME` nor `HOME` is set.
    #[error("cannot find a state directory: set XDG_STATE_HOME or HOME")]
    NoHome,
    /// Creating or securing a directory failed.
    #[error("cannot create private directory {path}: {source} — check that the parent exists, is writable and the disk is not full")]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The directory belongs to someone else.
    #[error("{path} is owned by uid {owner}, not by you (uid {uid}): remove it or set XDG_RUNTIME_DIR to a directory of yours")]
    NotOwned { path: PathBuf, owner: u32, uid: u32 },
}

/// The private directories of one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// Socket and pidfile of the managed Redis.
    pub runtime_dir: PathBuf,
    /// Redis data and session records.
    pub state_dir: PathBuf,
}

impl Paths {
    /// Paths from the process environment.
    pub fn from_env() -> Result<Paths, PathsError> {
        Paths::from_lookup(|name| std::env::var_os(name).map(PathBuf::from))
    }

    /// Paths from any variable lookup (absolute values only, as the XDG spec requires).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<PathBuf>) -> Result<Paths, PathsError> {
        let absolute = |name: &str| lookup(name).filter(|p| p.is_absolute());
        let runtime_dir = match absolute("XDG_RUNTIME_DIR") {
            Some(dir) => dir.join("panebus"),
            None => PathBuf::from(format!("/tmp/panebus-{}", current_uid())),
        };
        let state_dir = match (absolute("XDG_STATE_HOME"), absolute("HOME")) {
            (Some(dir), _) => dir.join("panebus"),
            (None, Some(home)) => home.join(".local/state/panebus"),
            (None, None) => return Err(PathsError::NoHome),
        };
        Ok(Paths {
            runtime_dir,
            state_dir,
        })
    }

    /// The managed Redis's unix socket.
    pub fn redis_socket(&self) -> PathBuf {
        self.runtime_dir.join("redis.sock")
    }

    /// The managed Redis's pidfile.
    pub fn redis_pidfile(&self) -> PathBuf {
        self.runtime_dir.join("redis.pid")
    }

    /// The managed Redis's data directory (`--dir`).
    pub fn redis_data_dir(&self) -> PathBuf {
        self.state_dir.join("redis")
    }

    /// The managed Redis's log file.
    pub fn redis_log(&self) -> PathBuf {
        self.state_dir.join("redis.log")
    }

    /// Records of sessions started by `up`.
    pub fn sessions_dir(&self) -> PathBuf {
        self.state_dir.join("sessions")
    }
}

/// The real user id of this process.
pub fn current_uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

/// Creates `path` (and parents) with mode 0700, or tightens an existing directory of ours
/// to 0700; refuses one owned by another user.
pub fn ensure_private_dir(path: &Path) -> Result<(), PathsError> {
    let create = |source| PathsError::Create {
        path: path.to_path_buf(),
        source,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(create)?;
    let meta = std::fs::symlink_metadata(path).map_err(create)?;
    let uid = current_uid();
    if meta.uid() != uid {
        return Err(PathsError::NotOwned {
            path: path.to_path_buf(),
            owner: meta.uid(),
            uid,
        });
    }
    if !meta.is_dir() {
        return Err(create(std::io::Error::other("not a directory")));
    }
    if meta.mode() & 0o777 != 0o700 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).map_err(create)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xdg_variables_win() {
        let paths = Paths::from_lookup(|name| match name {
            "XDG_RUNTIME_DIR" => Some("/run/user/7".into()),
            "XDG_STATE_HOME" => Some("/s".into()),
            "HOME" => Some("/home/u".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(
            paths.redis_socket(),
            Path::new("/run/user/7/panebus/redis.sock")
        );
        assert_eq!(paths.redis_data_dir(), Path::new("/s/panebus/redis"));
    }

    #[test]
    fn fallbacks_and_relative_values() {
        let paths = Paths::from_lookup(|name| match name {
            "XDG_RUNTIME_DIR" => Some("relative".into()),
            "HOME" => Some("/home/u".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(
            paths.runtime_dir,
            PathBuf::from(format!("/tmp/panebus-{}", current_uid()))
        );
        assert_eq!(paths.state_dir, Path::new("/home/u/.local/state/panebus"));
        assert!(matches!(
            Paths::from_lookup(|_| None),
            Err(PathsError::NoHome)
        ));
    }

    #[test]
    fn private_dir_is_0700() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        ensure_private_dir(&dir).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o700);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        ensure_private_dir(&dir).unwrap();
        assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
    }
}
