//! freightctl — see `freightctl --help`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use freightbridge::config::PartnersFile;
use freightbridge::odoo::FinanceConfig;
use freightbridge::odoo::finance_config::FINANCE_CONFIG_ENV;
use freightctl::chain::{Chain, ChainConfig};
use freightctl::demo::{self, CountingOdoo};
use freightctl::{odoo_check, odoo_from_env, send, transform_body};

const DEFAULT_PARTNERS: &str = "events/partners.local.toml";
const DEFAULT_SAMPLES: &str = "events/partners";
const DEFAULT_FINANCE: &str = "events/odoo.local.toml";

#[derive(Parser)]
#[command(
    name = "freightctl",
    version,
    about = "freightbridge: local chain and partner tools"
)]
struct Cli {
    /// Log JSON lines as the Lambda functions do.
    #[arg(long, global = true)]
    json_logs: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole chain locally: an API Gateway-like listener on 127.0.0.1 and the three handlers.
    Serve {
        #[arg(long, default_value_t = 3000)]
        port: u16,
        #[arg(long, default_value = DEFAULT_PARTNERS)]
        partners: PathBuf,
        /// Append every event put on the local bus here (JSON lines): the local EventBridge archive.
        #[arg(long, default_value = "target/freightctl/events.jsonl")]
        event_log: PathBuf,
        /// Dry-run journal of Odoo calls, used when ODOO_URL is not set.
        #[arg(long, default_value = "target/freightctl/odoo-journal.jsonl")]
        odoo_journal: PathBuf,
        /// Finance settings of the poster (accounts, journals, carriers); see docs/odoo.md.
        #[arg(long, env = FINANCE_CONFIG_ENV, default_value = DEFAULT_FINANCE)]
        odoo_finance: PathBuf,
    },
    /// Sign a body as the partner would and post it.
    Send {
        #[arg(long)]
        partner: String,
        #[arg(long)]
        file: PathBuf,
        /// Ingress URL; default http://127.0.0.1:3000/webhooks/<partner>.
        #[arg(long)]
        url: Option<String>,
        #[arg(long, default_value = DEFAULT_PARTNERS)]
        partners: PathBuf,
    },
    /// Print the canonical events a partner body becomes, one JSON object per line.
    Transform {
        #[arg(long)]
        partner: String,
        #[arg(long)]
        file: PathBuf,
        #[arg(long, default_value = DEFAULT_PARTNERS)]
        partners: PathBuf,
    },
    /// Start the chain, send every sample in events/partners/, wait for the queues, print a report.
    Demo {
        #[arg(long, default_value = DEFAULT_PARTNERS)]
        partners: PathBuf,
        #[arg(long, default_value = DEFAULT_SAMPLES)]
        samples: PathBuf,
        #[arg(long, default_value = "target/freightctl/demo-events.jsonl")]
        event_log: PathBuf,
        #[arg(long, default_value = "target/freightctl/demo-odoo-journal.jsonl")]
        odoo_journal: PathBuf,
        /// Finance settings of the poster, as for `serve`.
        #[arg(long, env = FINANCE_CONFIG_ENV, default_value = DEFAULT_FINANCE)]
        odoo_finance: PathBuf,
    },
    /// Operator commands for the Odoo side.
    Odoo {
        #[command(subcommand)]
        command: OdooCommand,
    },
}

#[derive(Subcommand)]
enum OdooCommand {
    /// Onboarding check: connection, access rights and every record the finance settings name.
    /// Exits non-zero when something would make the poster fail (MISSING or FAIL).
    Check {
        /// Finance settings of the poster, as for `serve`; the Odoo connection comes from
        /// ODOO_URL, ODOO_DB, ODOO_USER, ODOO_API_KEY / ODOO_PASSWORD and ODOO_TRANSPORT.
        #[arg(long, env = FINANCE_CONFIG_ENV, default_value = DEFAULT_FINANCE)]
        odoo_finance: PathBuf,
        /// Print the rows as JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Create the missing carrier vendors and service products (never accounts or journals).
        #[arg(long)]
        create_missing: bool,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo's report is the output; its logs only need to show problems.
    let default_level = match cli.command {
        Command::Demo { .. } | Command::Odoo { .. } => "warn",
        _ => "info",
    };
    freightbridge::observability::init_local(cli.json_logs, default_level);
    match run(cli.command).await {
        Ok(code) => code,
        Err(message) => {
            eprintln!("freightctl: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> Result<ExitCode, String> {
    match command {
        Command::Serve {
            port,
            partners,
            event_log,
            odoo_journal,
            odoo_finance,
        } => {
            let partners = load_partners(&partners)?;
            prepare(&[&event_log, &odoo_journal])?;
            let odoo = CountingOdoo::new(odoo_from_env(&odoo_journal).await?);
            let mut config = ChainConfig::new(partners);
            config.event_log = Some(event_log.clone());
            config.finance = Some(load_finance(&odoo_finance)?);
            let chain = Chain::start(config, odoo).map_err(|e| e.to_string())?;
            let (addr, server) = chain
                .listen(port)
                .await
                .map_err(|e| format!("cannot listen on 127.0.0.1:{port}: {e}"))?;
            eprintln!("freightbridge local chain listening on http://{addr}/webhooks/{{partner}}");
            eprintln!("event log: {}", event_log.display());
            tokio::select! {
                _ = server => {}
                _ = tokio::signal::ctrl_c() => eprintln!("stopping"),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Send {
            partner,
            file,
            url,
            partners,
        } => {
            let partners = load_partners(&partners)?;
            let config = partners
                .get(&partner)
                .ok_or_else(|| format!("partner {partner:?} is not in the partners file"))?;
            let body =
                std::fs::read(&file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            let message_id = format!("msg_{}", uuid::Uuid::new_v4().simple());
            let headers =
                send::partner_headers(config, &body, &message_id).map_err(|e| e.to_string())?;
            let url = url.unwrap_or_else(|| format!("http://127.0.0.1:3000/webhooks/{partner}"));
            let result = send::post(&reqwest::Client::new(), &url, &headers, body)
                .await
                .map_err(|e| e.to_string())?;
            println!("{} {}", result.status, result.body);
            Ok(if result.status < 300 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Transform {
            partner,
            file,
            partners,
        } => {
            let partners = load_partners(&partners)?;
            let body =
                std::fs::read(&file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            for event in transform_body(&partners, &partner, &body)? {
                println!(
                    "{}",
                    serde_json::to_string(&event).map_err(|e| e.to_string())?
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo {
            partners,
            samples,
            event_log,
            odoo_journal,
            odoo_finance,
        } => {
            let partners = load_partners(&partners)?;
            prepare(&[&event_log, &odoo_journal])?;
            // A fresh run each time: the report should describe this run only.
            for path in [&event_log, &odoo_journal] {
                let _ = std::fs::remove_file(path);
            }
            let odoo = CountingOdoo::new(odoo_from_env(&odoo_journal).await?);
            let mut config = ChainConfig::new(partners.clone());
            config.event_log = Some(event_log.clone());
            config.finance = Some(load_finance(&odoo_finance)?);
            config.visibility_timeout = Duration::from_millis(500);
            let chain = Chain::start(config, odoo).map_err(|e| e.to_string())?;
            let (addr, _server) = chain.listen(0).await.map_err(|e| e.to_string())?;
            let report = demo::run(&chain, addr, &samples, &partners)
                .await
                .map_err(|e| e.to_string())?;
            print!("{report}");
            println!("event log: {}", event_log.display());
            if std::env::var_os("ODOO_URL").is_none() {
                println!("odoo dry-run journal: {}", odoo_journal.display());
            }
            Ok(if report.drained && report.accepted() > 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Odoo {
            command:
                OdooCommand::Check {
                    odoo_finance,
                    json,
                    create_missing,
                },
        } => {
            let finance = load_finance(&odoo_finance)?;
            let odoo = odoo_check::odoo_config_from_env().map_err(|e| e.to_string())?;
            let report = odoo_check::check_config(&odoo, &finance, create_missing).await;
            if json {
                let text =
                    serde_json::to_string_pretty(&report.to_json()).map_err(|e| e.to_string())?;
                println!("{text}");
            } else {
                println!("finance settings: {}", odoo_finance.display());
                print!("{}", report.table());
            }
            Ok(ExitCode::from(report.exit_code()))
        }
    }
}

fn load_finance(path: &Path) -> Result<FinanceConfig, String> {
    FinanceConfig::load(path).map_err(|e| e.to_string())
}

fn load_partners(path: &Path) -> Result<PartnersFile, String> {
    PartnersFile::load(path).map_err(|e| e.to_string())
}

fn prepare(paths: &[&PathBuf]) -> Result<(), String> {
    for path in paths {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
    }
    Ok(())
}
