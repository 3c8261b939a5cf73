//! The Sluice interactive SQL shell: a thin client of the server's gRPC API.
//!
//! The shell splits input into statements ([`split`]), routes each one ([`command`]): queries
//! (SELECT, PRINT) stream through the Query call, SET / UNSET change session properties kept
//! locally, everything else goes through Execute, one statement per call so an error belongs
//! to exactly one statement. Results are printed as ASCII tables or JSON lines ([`render`]).
//!
//! Two modes:
//! - scripted (`-e` and/or `-f`): run the statements in order, stop at the first failure;
//! - interactive: a line editor with history; errors are printed and the shell goes on.

pub mod client;
pub mod command;
pub mod complete;
pub mod render;
mod session;
pub mod split;

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, RwLock};

use anyhow::Context;
use rustyline::error::ReadlineError;
use rustyline::history::DefaultHistory;
use rustyline::{CompletionType, Config, Editor};

use crate::client::Client;
use crate::complete::SqlHelper;
use crate::session::{Outcome, Session};

/// What the shell should do; the binary maps its command-line flags to this.
#[derive(Debug, Clone)]
pub struct ShellArgs {
    /// Server URL, e.g. `http://127.0.0.1:8815` (a bare `host:port` also works).
    pub server: String,
    /// Statements to run (`-e`); with `file`, these run first.
    pub execute: Option<String>,
    /// A script file to run (`-f`); `-` reads standard input.
    pub file: Option<PathBuf>,
    pub output: OutputFormat,
    /// History file for interactive mode; defaults to `$HOME/.sluice_history`.
    pub history_file: Option<PathBuf>,
    /// Bearer token for a server started with `--auth-file`.
    pub token: Option<String>,
    /// PEM CA to verify a TLS server's certificate with (`https://` URLs).
    pub tls_ca: Option<PathBuf>,
}

/// How results are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OutputFormat {
    /// Aligned ASCII tables, like ksqlDB's CLI.
    #[default]
    Table,
    /// One JSON object per line.
    Json,
}

impl FromStr for OutputFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "table" => Ok(Self::Table),
            "json" => Ok(Self::Json),
            _ => Err(format!(
                "unknown output format '{s}' (expected 'table' or 'json')"
            )),
        }
    }
}

const PROMPT: &str = "sluice> ";
const CONTINUATION_PROMPT: &str = "     > ";

/// Runs the shell; returns the process exit code (0 = every statement succeeded, 1 = any
/// failed). Interactive sessions return 0: errors there are shown and the user carries on.
///
/// Problems the user should see (unreadable script, unreachable server) are printed to
/// stderr and turn into exit code 1; `Err` is left for failures of the terminal itself.
pub async fn run(args: ShellArgs) -> anyhow::Result<i32> {
    let scripted = args.execute.is_some() || args.file.is_some();

    // Read the whole script before connecting, so a typo in a file name fails fast.
    let mut statements = Vec::new();
    if let Some(sql) = &args.execute {
        statements.extend(split::split_script(sql));
    }
    if let Some(path) = &args.file {
        match read_script(path) {
            Ok(text) => statements.extend(split::split_script(&text)),
            Err(e) => {
                eprintln!("Error: cannot read {}: {e}", path.display());
                return Ok(1);
            }
        }
    }

    let client =
        match Client::connect_with(&args.server, args.token.as_deref(), args.tls_ca.as_deref())
            .await
        {
            Ok(client) => client,
            Err(message) => {
                if args.output == OutputFormat::Json {
                    println!(
                        "{}",
                        render::json_error(None, &message, tonic::Code::Unavailable)
                    );
                }
                eprintln!("Error: {message}");
                return Ok(1);
            }
        };
    // Completion fetches names through its own handle on the same connection.
    let names_client = client.clone();
    let mut session = Session::new(
        client,
        args.output,
        !scripted,
        Box::new(io::stdout()),
        Box::new(io::stderr()),
    );

    if scripted {
        run_script(&mut session, &statements).await
    } else {
        let history = args.history_file.clone().or_else(default_history_file);
        interactive(session, names_client, &args.server, history).await
    }
}

fn read_script(path: &Path) -> io::Result<String> {
    if path == Path::new("-") {
        let mut text = String::new();
        io::stdin().read_to_string(&mut text)?;
        Ok(text)
    } else {
        std::fs::read_to_string(path)
    }
}

fn default_history_file() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".sluice_history"))
}

/// Runs statements in order, stopping at the first failure (like a script with `set -e`).
async fn run_script(session: &mut Session, statements: &[String]) -> anyhow::Result<i32> {
    for statement in statements {
        match session
            .run(statement)
            .await
            .context("cannot write output")?
        {
            Outcome::Succeeded => {}
            Outcome::Failed => return Ok(1),
            Outcome::Exit => break,
        }
    }
    Ok(0)
}

async fn interactive(
    mut session: Session,
    mut names_client: Client,
    server: &str,
    history: Option<PathBuf>,
) -> anyhow::Result<i32> {
    // Tab completes the longest common prefix, a second Tab lists the candidates (as
    // ksqlDB's CLI, on JLine, does).
    let config = Config::builder()
        .completion_type(CompletionType::List)
        .build();
    let mut editor: Editor<SqlHelper, DefaultHistory> =
        Editor::with_config(config).context("cannot start the line editor")?;
    let names = Arc::new(RwLock::new(complete::Names::default()));
    complete::refresh(&mut names_client, &names).await;
    editor.set_helper(Some(SqlHelper::new(names.clone())));
    if let Some(path) = &history {
        // A missing or unreadable history file only costs the user their history.
        let _ = editor.load_history(path);
    }
    println!(
        "Connected to Sluice at {server}. End statements with ';'. Type 'exit' or press Ctrl-D to leave."
    );

    // Input typed so far that does not yet end a statement.
    let mut buffer = String::new();
    // The lines of the current history entry; multi-line statements are recalled whole.
    let mut entry: Vec<String> = Vec::new();
    loop {
        let prompt = if buffer.is_empty() {
            PROMPT
        } else {
            CONTINUATION_PROMPT
        };
        // rustyline blocks, so it gets a blocking thread; the editor travels there and back.
        let (returned, line) = tokio::task::spawn_blocking(move || {
            let line = editor.readline(prompt);
            (editor, line)
        })
        .await
        .context("line editor thread failed")?;
        editor = returned;

        let line = match line {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => {
                buffer.clear();
                entry.clear();
                continue;
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e).context("cannot read input"),
        };

        if buffer.is_empty() && command::is_exit_command(&line) {
            let _ = editor.add_history_entry(line.trim());
            break;
        }
        if buffer.is_empty() && line.trim().is_empty() {
            continue;
        }

        buffer.push_str(&line);
        buffer.push('\n');
        entry.push(line);
        let split = split::split(&buffer);
        buffer = split.rest;
        if buffer.is_empty() {
            let _ = editor.add_history_entry(entry.join("\n").trim());
            entry.clear();
        }

        let mut leave = false;
        for statement in &split.statements {
            let outcome = session
                .run(statement)
                .await
                .context("cannot write output")?;
            if outcome == Outcome::Exit {
                leave = true;
                break;
            }
            if outcome == Outcome::Succeeded && complete::changes_names(statement) {
                complete::refresh(&mut names_client, &names).await;
            }
        }
        if leave {
            break;
        }
    }

    if let Some(path) = &history {
        let _ = editor.save_history(path);
    }
    Ok(0)
}

#[cfg(test)]
mod tests;
