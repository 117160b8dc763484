//! `panebus acl`: prints the Redis `ACL SETUSER` commands that give each kind of bus
//! client — worker, dispatcher, coordinator — only what it needs, ready to pipe into
//! `redis-cli` (or, with `--json`, as data). It never talks to Redis: the rules come from
//! [`crate::bus::acl`], a pure function of the role, the namespace and the worker scope.
//!
//! Passwords: without a password option the users are created with none, so they cannot
//! log in until one is added; `--password-sha256` prints only the digest; `--password-env`
//! prints the password itself (asked for explicitly), so pipe that output straight into
//! `redis-cli` rather than into a file.

use anyhow::Context as _;
use clap::{Args, ValueEnum};

use super::{print_json, print_text, Context};
use crate::bus::acl::{self, Password, Role, UserAcl, WorkerScope};
use crate::bus::Keys;

/// Which users to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleChoice {
    /// `panebus worker` processes.
    Worker,
    /// The CLI: dispatch, results, events, status, DLQ, workflows, restart, release.
    Dispatcher,
    /// `panebus attach` and `panebus watchdog`.
    Coordinator,
    /// All three.
    All,
}

impl RoleChoice {
    fn roles(self) -> Vec<Role> {
        match self {
            RoleChoice::Worker => vec![Role::Worker],
            RoleChoice::Dispatcher => vec![Role::Dispatcher],
            RoleChoice::Coordinator => vec![Role::Coordinator],
            RoleChoice::All => vec![Role::Worker, Role::Dispatcher, Role::Coordinator],
        }
    }
}

/// Options of `panebus acl`.
#[derive(Debug, Clone, Args)]
pub struct AclArgs {
    /// Users to print.
    #[arg(long, value_enum, default_value_t = RoleChoice::All)]
    pub role: RoleChoice,

    /// Workers the worker user may serve: `%3` (this node), `devbox/%3`, all of a node
    /// (`devbox/*`), or `*` [default: <node>/*]
    #[arg(long, value_name = "SCOPE", value_parser = check_scope)]
    pub worker: Option<String>,

    /// Workers the dispatcher user may queue commands for (same forms as --worker)
    #[arg(long, value_name = "SCOPE", default_value = "*", value_parser = check_scope)]
    pub queues: String,

    /// User name (one role only) [default: <namespace>-<role>[-<scope>]]
    #[arg(long, value_name = "NAME", value_parser = check_user)]
    pub user: Option<String>,

    /// Read the password from this environment variable and print it as `>password`
    #[arg(long, value_name = "VAR", conflicts_with = "password_sha256")]
    pub password_env: Option<String>,

    /// Set the password by its SHA-256 digest (64 hex digits); prints no secret
    #[arg(long, value_name = "HEX", value_parser = check_hash)]
    pub password_sha256: Option<String>,
}

fn check_scope(spec: &str) -> Result<String, String> {
    let resolved = if spec.contains('/') || spec == "*" {
        spec.to_string()
    } else {
        format!("node/{spec}")
    };
    WorkerScope::parse(&resolved)
        .map(|_| spec.to_string())
        .map_err(|e| e.to_string())
}

fn check_user(name: &str) -> Result<String, String> {
    acl::check_user(name)
        .map(|()| name.to_string())
        .map_err(|e| e.to_string())
}

fn check_hash(hex: &str) -> Result<String, String> {
    Password::sha256(hex)
        .map(|_| hex.to_string())
        .map_err(|e| e.to_string())
}

/// Builds the users' ACLs.
fn users(args: &AclArgs, ctx: &Context) -> anyhow::Result<Vec<UserAcl>> {
    let roles = args.role.roles();
    if args.user.is_some() && roles.len() > 1 {
        anyhow::bail!(
            "--user names one user: combine it with --role worker, dispatcher or coordinator"
        );
    }
    let password = match (&args.password_env, &args.password_sha256) {
        (Some(var), _) => {
            let value = std::env::var(var).with_context(|| {
                format!(
                    "--password-env {var}: the variable is not set (or not UTF-8); export it first"
                )
            })?;
            if value.is_empty() {
                anyhow::bail!("--password-env {var}: the variable is empty; a user needs a non-empty password");
            }
            Password::Plain(value)
        }
        (None, Some(hex)) => Password::sha256(hex)?,
        (None, None) => Password::Unset,
    };
    let scope = |spec: &str| -> anyhow::Result<WorkerScope> {
        let resolved = if spec.contains('/') || spec == "*" {
            spec.to_string()
        } else {
            ctx.config.resolve_worker(spec)
        };
        Ok(WorkerScope::parse(&resolved)?)
    };
    let default_worker = format!("{}/*", ctx.config.node);
    let keys = Keys::new(ctx.config.namespace.clone());
    roles
        .into_iter()
        .map(|role| {
            let scope = match role {
                Role::Worker => scope(args.worker.as_deref().unwrap_or(&default_worker))?,
                Role::Dispatcher => scope(&args.queues)?,
                Role::Coordinator => WorkerScope::all(),
            };
            let user = args
                .user
                .clone()
                .unwrap_or_else(|| acl::default_user(role, &keys, &scope));
            Ok(acl::user_acl(role, &keys, &scope, user, password.clone()))
        })
        .collect()
}

/// Prints the `ACL SETUSER` lines (or their JSON form).
pub async fn run(args: AclArgs, ctx: Context) -> anyhow::Result<()> {
    let users = users(&args, &ctx)?;
    if ctx.json {
        let docs: Vec<serde_json::Value> = users
            .iter()
            .map(|u| {
                let mut doc = serde_json::to_value(u).expect("ACLs serialize");
                doc["setuser"] = serde_json::json!(u.setuser_args());
                doc["redis_cli"] = serde_json::json!(acl::redis_cli_line(u));
                doc
            })
            .collect();
        print_json(&docs)?;
    } else {
        let text: String = users
            .iter()
            .map(|u| format!("{}\n", acl::redis_cli_line(u)))
            .collect();
        print_text(text)?;
    }
    if args.password_env.is_none() && args.password_sha256.is_none() {
        eprintln!(
            "panebus acl: no password given, so these users cannot log in until you add one \
             (ACL SETUSER NAME >PASSWORD), or run again with --password-env VAR or --password-sha256 HEX"
        );
    }
    Ok(())
}
