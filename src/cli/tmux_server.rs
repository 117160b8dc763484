//! Flags that choose a tmux server (`-L NAME` / `-S PATH`), shared by every command that
//! talks to tmux, and the node name that goes with that server.

use std::path::PathBuf;

use clap::Args;

use crate::config::Config;
use crate::tmux::TmuxServerRef;

/// Which tmux server to talk to.
#[derive(Debug, Clone, Default, Args)]
pub struct TmuxServerArgs {
    /// tmux socket name, as for `tmux -L NAME`
    #[arg(short = 'L', value_name = "NAME", conflicts_with = "socket_path")]
    pub socket_name: Option<String>,

    /// tmux socket path, as for `tmux -S PATH`
    #[arg(short = 'S', value_name = "PATH")]
    pub socket_path: Option<PathBuf>,
}

impl TmuxServerArgs {
    /// The server named by `-L`/`-S`, if one was.
    pub fn explicit(&self) -> Option<TmuxServerRef> {
        match (&self.socket_name, &self.socket_path) {
            (_, Some(path)) => Some(TmuxServerRef::Path(path.clone())),
            (Some(name), None) => Some(TmuxServerRef::Name(name.clone())),
            (None, None) => None,
        }
    }

    /// The server: `-L`/`-S` when given, else the one this process runs under (`TMUX`),
    /// else the default server.
    pub fn server(&self) -> TmuxServerRef {
        self.explicit().unwrap_or_else(current_server)
    }

    /// The flags that select the server again in a command line printed for the user
    /// (`" -L work"`, `" -S /path"`, or nothing).
    pub fn hint(&self) -> String {
        match self.explicit() {
            Some(TmuxServerRef::Name(name)) => format!(" -L {name}"),
            Some(TmuxServerRef::Path(path)) => format!(" -S {}", path.display()),
            Some(TmuxServerRef::Default) | None => String::new(),
        }
    }

    /// The node name of `server`'s workers. Workers compute their default node from their
    /// own `TMUX` socket (host name, plus `-<socket>` unless it is `default`), so unless the
    /// node was set explicitly (`PANEBUS_NODE`, `--node`) the coordinator does the same
    /// for the server it is told to use.
    pub fn node(&self, config: &Config) -> String {
        let from_env = Config::from_env().map(|c| c.node).ok();
        let explicit =
            std::env::var_os("PANEBUS_NODE").is_some() || from_env.as_deref() != Some(&config.node);
        if explicit {
            return config.node.clone();
        }
        let socket = match self.server() {
            TmuxServerRef::Default => "default".to_string(),
            TmuxServerRef::Name(name) => name,
            TmuxServerRef::Path(path) => path.display().to_string(),
        };
        let fake_tmux = format!("/{socket},0,0");
        Config::from_lookup(|name| match name {
            "TMUX" => Some(fake_tmux.clone()),
            "PANEBUS_NODE" => None,
            other => std::env::var(other).ok(),
        })
        .map(|c| c.node)
        .unwrap_or_else(|_| config.node.clone())
    }
}

/// The server this process runs under (`TMUX`), else the default server.
pub fn current_server() -> TmuxServerRef {
    std::env::var("TMUX")
        .ok()
        .and_then(|t| TmuxServerRef::from_tmux_env(&t))
        .unwrap_or(TmuxServerRef::Default)
}
