//! `swarm login` and `swarm logout`, like docker's: the daemon checks the credentials with
//! the registry (`POST /auth`); only then are they written to the credential file
//! (`credentials.rs`). The password never reaches a log, a message or the command line of
//! anything we start.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Context, Result, bail};
use clap::Args;

use super::credentials::CredentialFile;
use crate::api::client::ApiClient;
use crate::image::reference::registry_of_server;
use crate::types::auth::{AuthConfig, AuthResponse};

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The registry (`host:port`); Docker Hub when left out.
    server: Option<String>,
    #[arg(short, long)]
    username: Option<String>,
    /// The password (visible to other users of this host: prefer --password-stdin).
    #[arg(short, long, conflicts_with = "password_stdin")]
    password: Option<String>,
    /// Read the password from stdin.
    #[arg(long)]
    password_stdin: bool,
    /// Plain HTTP to a registry that is not on loopback.
    #[arg(long)]
    insecure: bool,
}

#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// The registry (`host:port`); Docker Hub when left out.
    server: Option<String>,
}

pub async fn login(client: &ApiClient, args: LoginArgs) -> Result<i32> {
    let registry = registry_of_server(args.server.as_deref().unwrap_or(""))?;
    let file = CredentialFile::locate()?;
    let stdin = std::io::stdin();
    let (username, password) = match (args.username, args.password, args.password_stdin) {
        (None, None, false) if file.get(&registry)?.is_some() => {
            eprintln!("Authenticating with existing credentials...");
            file.get(&registry)?
                .context("the stored credentials disappeared")?
        }
        (None, _, true) => bail!("--password-stdin needs --username"),
        (username, password, password_stdin) => {
            let username = match username {
                Some(u) => u,
                None => prompt_username(&stdin)?,
            };
            let password = match password {
                Some(p) => {
                    eprintln!(
                        "WARNING! Using --password via the CLI is insecure. Use --password-stdin."
                    );
                    p
                }
                None if password_stdin => read_password_stdin(&stdin)?,
                None => prompt_password(&stdin)?,
            };
            (username, password)
        }
    };
    if username.is_empty() {
        bail!("a username is required");
    }
    if password.is_empty() {
        bail!("a password is required");
    }
    let path = if args.insecure {
        "/auth?insecure=1"
    } else {
        "/auth"
    };
    let body = AuthConfig::new(&username, &password, &registry);
    match client.post::<_, AuthResponse>(path, &body).await {
        Ok(answer) => {
            file.store(&registry, &username, &password)?;
            println!(
                "{}",
                if answer.status.is_empty() {
                    "Login Succeeded"
                } else {
                    &answer.status
                }
            );
            Ok(0)
        }
        Err(e) if e.status().is_some() => {
            eprintln!("Error response from daemon: {e}");
            Ok(1)
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn logout(args: LogoutArgs) -> Result<i32> {
    let registry = registry_of_server(args.server.as_deref().unwrap_or(""))?;
    let file = CredentialFile::locate()?;
    if file.remove(&registry)? {
        println!("Removing login credentials for {registry}");
    } else {
        println!("Not logged in to {registry}");
    }
    Ok(0)
}

fn prompt_username(stdin: &std::io::Stdin) -> Result<String> {
    if !stdin.is_terminal() {
        bail!("cannot ask for a username: stdin is not a terminal (use --username)");
    }
    eprint!("Username: ");
    std::io::stderr().flush()?;
    let mut line = String::new();
    stdin.lock().read_line(&mut line)?;
    Ok(line.trim().to_string())
}

/// The whole of stdin without its trailing newline (docker's `--password-stdin`).
fn read_password_stdin(stdin: &std::io::Stdin) -> Result<String> {
    let mut text = String::new();
    std::io::Read::read_to_string(&mut stdin.lock(), &mut text).context("read stdin")?;
    Ok(text.trim_end_matches(['\n', '\r']).to_string())
}

/// Ask on the terminal with echo off, restoring the terminal even on error.
fn prompt_password(stdin: &std::io::Stdin) -> Result<String> {
    use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
    if !stdin.is_terminal() {
        bail!("cannot ask for a password: stdin is not a terminal (use --password-stdin)");
    }
    eprint!("Password: ");
    std::io::stderr().flush()?;
    let saved = tcgetattr(stdin).context("read the terminal's settings")?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    tcsetattr(stdin, SetArg::TCSANOW, &quiet).context("turn the terminal's echo off")?;
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    let _ = tcsetattr(stdin, SetArg::TCSANOW, &saved);
    eprintln!();
    read.context("read the password")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}
