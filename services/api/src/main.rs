//! `confab-api`: serve the API, or run a one-off command.

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use confab_api::{cli, settings::Settings, startup::Application};
use confab_common::config::Source;
use confab_common::telemetry::{self, LogSettings};

#[derive(Parser)]
#[command(version, about = "Confab API: accounts, rooms, invites, recordings, administration")]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve HTTP (the default).
    Serve,
    /// Apply pending database migrations.
    Migrate,
    /// Write a new Ed25519 signing key to a file.
    Keygen {
        #[arg(long)]
        out: PathBuf,
    },
    /// Administrator accounts.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create an admin (password on stdin), or promote an existing account.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: Option<String>,
    },
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    match Args::parse().command.unwrap_or(Command::Serve) {
        // Needs no configuration: it runs before the key file it creates exists.
        Command::Keygen { out } => cli::keygen(&out),
        command => run(command).await,
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    let src = Source::from_env()?;
    telemetry::init(&LogSettings::from_source(&src)?);
    match command {
        Command::Serve => {
            let app = Application::build(Settings::from_source(&src)?).await?;
            tracing::info!(port = app.port(), "confab-api listening");
            app.run_until_stopped().await?;
        }
        Command::Migrate => cli::migrate(&src).await?,
        Command::Keygen { out } => cli::keygen(&out)?,
        Command::Admin { command: AdminCommand::Create { email, name } } => {
            let mut password = String::new();
            std::io::stdin().lock().read_line(&mut password).context("reading the password from stdin")?;
            let password = password.trim_end_matches(['\r', '\n']);
            println!("{}", cli::create_admin(&src, &email, name.as_deref(), password).await?);
        }
    }
    Ok(())
}
