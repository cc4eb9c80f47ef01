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
use freightctl::durable::Durability;
use freightctl::ops::{self, Letter, LetterFilter, Ops, ReplayWindow};
use freightctl::{odoo_check, odoo_from_env, send, transform_body};

const DEFAULT_PARTNERS: &str = "events/partners.local.toml";
const DEFAULT_SAMPLES: &str = "events/partners";
const DEFAULT_FINANCE: &str = "events/odoo.local.toml";
const DEFAULT_RECONCILE: &str = "events/reconcile.local.toml";

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
        /// The embedded database (queues, DLQs, idempotency, archive): a restart resumes from it.
        #[arg(long, default_value = "target/freightctl/state")]
        state_dir: PathBuf,
        /// `full`: every 2xx is on disk even after a power loss; `normal`: survives a crash
        /// or kill -9, and may lose the last commits on power loss (about twice as fast).
        #[arg(long, default_value = "full", value_parser = ["full", "normal"])]
        durability: String,
        /// On SIGTERM or Ctrl-C, how long in-flight work may take to finish before exiting.
        #[arg(long, default_value_t = 10)]
        drain_seconds: u64,
        /// The reconciler's tolerances, allow-lists and rate cards (TOML).
        #[arg(long, default_value = DEFAULT_RECONCILE)]
        reconcile_config: PathBuf,
        /// How long a record failing with a retryable error (Odoo down) is retried.
        #[arg(long, default_value_t = 120)]
        retry_budget_minutes: u64,
        /// Days the event archive keeps envelopes (0 keeps them forever), as the SAM
        /// template's ArchiveRetentionDays; older ones go at the next sweep (every 10 minutes).
        #[arg(long, default_value_t = 30)]
        archive_retention_days: u64,
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
        /// The reconciler's settings, as for `serve`.
        #[arg(long, default_value = DEFAULT_RECONCILE)]
        reconcile_config: PathBuf,
    },
    /// Operator commands for the Odoo side.
    Odoo {
        #[command(subcommand)]
        command: OdooCommand,
    },
    /// The dead-letter queues: list what failed and why, redrive it once fixed.
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// Send the archived events of a time window through the chain again; the consumers dedupe
    /// them, so a replay never applies an effect twice.
    Replay {
        /// Start of the window: RFC 3339, or an age like 2h.
        #[arg(long)]
        from: String,
        /// End of the window: RFC 3339, or an age; default now.
        #[arg(long)]
        to: Option<String>,
        /// Only this partner's events.
        #[arg(long)]
        partner: Option<String>,
        /// Only events of this detail type (shipment.status_changed, partner.webhook.received, …).
        #[arg(long = "type")]
        detail_type: Option<String>,
        /// Count what would be replayed; send nothing.
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: Target,
    },
    /// The reconciler's operator side.
    Reconcile {
        #[command(subcommand)]
        command: ReconcileCommand,
    },
    /// Every step one shipment took (webhooks, events, Odoo records, dead letters), from a
    /// tracking number, an event id, a delivery id or a carrier invoice number.
    Trace {
        query: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: Target,
    },
}

/// Where the operator commands act: a local chain's state directory, or a deployed stack.
#[derive(clap::Args, Debug, Clone)]
struct Target {
    /// The state directory of `freightctl serve` (safe while it runs).
    #[arg(long, default_value = "target/freightctl/state")]
    state_dir: PathBuf,
    /// Act on the deployed stack instead, through the AWS SDK (credentials and region from the
    /// environment), its resources named by the stack outputs file.
    #[arg(long)]
    aws: bool,
    /// The stack's outputs (`sam list stack-outputs --stack-name S --output json > F`); default
    /// $FREIGHTBRIDGE_STACK_OUTPUTS. Implies --aws.
    #[arg(long)]
    stack_outputs: Option<PathBuf>,
}

impl Target {
    async fn open(&self) -> Result<Ops, String> {
        Ops::open(self.aws, self.stack_outputs.as_deref(), &self.state_dir).await
    }
}

#[derive(Subcommand)]
enum ReconcileCommand {
    /// Sweep the ledger for what fell through the cracks: deliveries not invoiced, invoices
    /// never delivered (disputed as no_pod), accruals with no invoice; prints a summary by
    /// finding and carrier with the amounts and the oldest item. The ages are each carrier's
    /// `sweep` settings in --reconcile-config (default 14, 7 and 30 days); a flag given here
    /// replaces that age for every carrier. The local chain (--state-dir) or, with --aws, the
    /// deployed stack's ledger table and bus.
    Sweep {
        #[arg(long)]
        uninvoiced_days: Option<i64>,
        #[arg(long)]
        undelivered_days: Option<i64>,
        #[arg(long)]
        accrual_days: Option<i64>,
        /// Report only: publish no dispute.
        #[arg(long)]
        report_only: bool,
        #[arg(long)]
        json: bool,
        /// The reconciler's settings, as for `serve` (its per-carrier `[carrier.X.sweep]` ages).
        /// Without it, `events/reconcile.local.toml` when run from a checkout, else the
        /// built-in ages.
        #[arg(long)]
        reconcile_config: Option<PathBuf>,
        #[command(flatten)]
        target: Target,
    },
    /// The exceptions report a finance user reads: disputed and waiting invoices, deliveries
    /// not invoiced, stale accruals, each with the amount at stake, largest first. --html
    /// writes one self-contained page (charts by reason and carrier, a table that sorts;
    /// nothing loaded from outside), --csv a spreadsheet's rows. Read only. The local chain
    /// (--state-dir) or, with --aws, the deployed stack's ledger table.
    #[command(group(clap::ArgGroup::new("output").required(true).multiple(true).args(["html", "csv"])))]
    Report {
        /// Where to write the HTML page.
        #[arg(long)]
        html: Option<PathBuf>,
        /// Where to write the CSV.
        #[arg(long)]
        csv: Option<PathBuf>,
        /// The time ages are counted to (RFC 3339); default now.
        #[arg(long)]
        now: Option<chrono::DateTime<chrono::Utc>>,
        /// The reconciler's settings, as for `sweep` (each carrier's ages for overdue
        /// invoices, uninvoiced deliveries and stale accruals).
        #[arg(long)]
        reconcile_config: Option<PathBuf>,
        #[command(flatten)]
        target: Target,
    },
    /// Ask Odoo which of the ledger's open invoices have their bill paid (payment_state paid or
    /// in_payment; 80 invoice numbers per call): each becomes freight_invoice.settled, and a
    /// shipment whose invoices are all settled is closed. Odoo from ODOO_URL, ODOO_DB,
    /// ODOO_USER, ODOO_API_KEY / ODOO_PASSWORD and ODOO_TRANSPORT, as for `serve`.
    Settle {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: Target,
    },
    /// A person approves a disputed invoice: `freight_invoice.matched` is published (the poster
    /// posts the bill and reverses the accrual), with the approver and the reason in the ledger
    /// and the audit trail. The local chain (--state-dir) or, with --aws, the deployed stack's
    /// ledger table, bus and audit table.
    Approve {
        /// The carrier's invoice number.
        invoice: String,
        /// Who approves (named in the evidence and the trail).
        #[arg(long)]
        by: String,
        /// Why the dispute is overruled.
        #[arg(long)]
        reason: String,
        /// Let the user who confirmed the delivery approve its payment too (segregation of
        /// duties is enforced otherwise).
        #[arg(long)]
        allow_delivery_confirmer: bool,
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Subcommand)]
enum DlqCommand {
    /// A table of the dead letters: queue, message id, age, receives, error code, partner,
    /// shipment, message.
    List {
        #[command(flatten)]
        filter: FilterArgs,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Send dead letters back to the queue they came from, unchanged.
    Redrive {
        #[command(flatten)]
        filter: FilterArgs,
        /// At most this many letters.
        #[arg(long)]
        limit: Option<usize>,
        /// Count what would move; move nothing.
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: Target,
    },
}

#[derive(clap::Args, Debug, Clone)]
struct FilterArgs {
    /// Only this dead-letter queue (transform-dlq, odoo-dlq, reconcile-dlq; bus-dlq in AWS).
    #[arg(long)]
    queue: Option<String>,
    /// Only letters with this error code.
    #[arg(long)]
    code: Option<String>,
    /// Only letters dead-lettered since: RFC 3339, or an age like 30m, 2h, 7d.
    #[arg(long)]
    since: Option<String>,
}

impl FilterArgs {
    fn filter(&self) -> Result<LetterFilter, String> {
        Ok(LetterFilter {
            queue: self.queue.clone(),
            code: self.code.clone(),
            since: self
                .since
                .as_deref()
                .map(|t| ops::parse_time(t, chrono::Utc::now()))
                .transpose()?,
        })
    }
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
        Command::Demo { .. }
        | Command::Odoo { .. }
        | Command::Dlq { .. }
        | Command::Replay { .. }
        | Command::Reconcile { .. }
        | Command::Trace { .. } => "warn",
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
            state_dir,
            durability,
            drain_seconds,
            reconcile_config,
            retry_budget_minutes,
            archive_retention_days,
        } => {
            let partners = load_partners(&partners)?;
            prepare(&[&event_log, &odoo_journal])?;
            let odoo = CountingOdoo::new(odoo_from_env(&odoo_journal).await?);
            let mut config = ChainConfig::new(partners, &state_dir);
            config.durability = match durability.as_str() {
                "normal" => Durability::Normal,
                _ => Durability::Full,
            };
            config.event_log = Some(event_log.clone());
            config.finance = Some(load_finance(&odoo_finance)?);
            config.reconcile = load_reconcile(&reconcile_config)?;
            config.retry.budget = Duration::from_secs(retry_budget_minutes.saturating_mul(60));
            config.odoo_user = std::env::var("ODOO_URL")
                .ok()
                .and_then(|_| std::env::var("ODOO_USER").ok());
            config.archive_retention = (archive_retention_days > 0)
                .then(|| Duration::from_secs(archive_retention_days.saturating_mul(24 * 60 * 60)));
            // BREAKER_THRESHOLD and BREAKER_COOLDOWN_SECONDS, as the deployed poster reads them.
            config.breaker = freightbridge::environment::breaker_config()?;
            let chain = Chain::start(config, odoo).map_err(|e| e.to_string())?;
            let (stop_listener, listener_stopped) = tokio::sync::oneshot::channel::<()>();
            let (addr, server) = chain
                .listen_until(port, async {
                    let _ = listener_stopped.await;
                })
                .await
                .map_err(|e| format!("cannot listen on 127.0.0.1:{port}: {e}"))?;
            eprintln!("freightbridge local chain listening on http://{addr}/webhooks/{{partner}}");
            eprintln!("state: {}", chain.state.path().display());
            eprintln!("event log: {}", event_log.display());
            let signal = stop_signal().await.map_err(|e| format!("signals: {e}"))?;
            eprintln!("{signal}: draining (at most {drain_seconds} s)");
            // No new deliveries, the ones being answered are finished; then the consumers.
            let _ = stop_listener.send(());
            let bound = Duration::from_secs(drain_seconds);
            let _ = tokio::time::timeout(bound, server).await;
            let drained = chain.shutdown(bound).await;
            eprintln!(
                "{}",
                if drained {
                    "stopped: in-flight work finished"
                } else {
                    "stopped: unfinished work resumes on the next start"
                }
            );
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
            reconcile_config,
        } => {
            let partners = load_partners(&partners)?;
            prepare(&[&event_log, &odoo_journal])?;
            // A fresh run each time: the report should describe this run only.
            for path in [&event_log, &odoo_journal] {
                let _ = std::fs::remove_file(path);
            }
            let odoo = CountingOdoo::new(odoo_from_env(&odoo_journal).await?);
            // A fresh state too: the demo reports on its own samples only.
            let state_dir = PathBuf::from("target/freightctl/demo-state");
            if state_dir.exists() {
                std::fs::remove_dir_all(&state_dir)
                    .map_err(|e| format!("cannot clear {}: {e}", state_dir.display()))?;
            }
            let mut config = ChainConfig::new(partners.clone(), &state_dir);
            config.event_log = Some(event_log.clone());
            config.finance = Some(load_finance(&odoo_finance)?);
            config.reconcile = load_reconcile(&reconcile_config)?;
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
        Command::Dlq { command } => dlq(command).await,
        Command::Reconcile {
            command:
                ReconcileCommand::Sweep {
                    uninvoiced_days,
                    undelivered_days,
                    accrual_days,
                    report_only,
                    json,
                    reconcile_config,
                    target,
                },
        } => {
            let overrides = freightctl::ops::AgeOverrides {
                uninvoiced_days,
                undelivered_days,
                accrual_days,
            };
            let settings = overrides.apply(&sweep_settings(reconcile_config.as_deref())?)?;
            let ops = target.open().await?;
            let run = ops.sweep(settings, !report_only).await?;
            if json {
                println!("{}", to_json(&run)?);
            } else {
                print!("{}", ops::sweep_table(&run, chrono::Utc::now()));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Reconcile {
            command:
                ReconcileCommand::Report {
                    html,
                    csv,
                    now,
                    reconcile_config,
                    target,
                },
        } => {
            let settings = sweep_settings(reconcile_config.as_deref())?;
            let generated_at = chrono::Utc::now();
            let ops = target.open().await?;
            let report = ops
                .exceptions(now.unwrap_or(generated_at), &settings)
                .await?;
            let mut written = Vec::new();
            if let Some(path) = &html {
                let page =
                    freightctl::report::html(&report, generated_at).map_err(|e| e.to_string())?;
                write_atomically(path, &page)?;
                written.push(format!("HTML {}", path.display()));
            }
            if let Some(path) = &csv {
                let text = freightctl::report::csv(&report).map_err(|e| e.to_string())?;
                write_atomically(path, &text)?;
                written.push(format!("CSV {}", path.display()));
            }
            println!(
                "{} exceptions from {} ledger entries; wrote {}",
                report.rows.len(),
                report.entries,
                written.join(", ")
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Reconcile {
            command: ReconcileCommand::Settle { json, target },
        } => {
            let odoo_config = odoo_check::odoo_config_from_env().map_err(|e| e.to_string())?;
            let odoo = freightbridge::odoo::OdooClient::connect(&odoo_config)
                .await
                .map_err(|e| e.to_string())?;
            let ops = target.open().await?;
            let run = ops.settle(&odoo).await?;
            if json {
                println!("{}", to_json(&run)?);
            } else {
                print!("{}", ops::settle_table(&run));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Reconcile {
            command:
                ReconcileCommand::Approve {
                    invoice,
                    by,
                    reason,
                    allow_delivery_confirmer,
                    target,
                },
        } => {
            if by.trim().is_empty() || reason.trim().is_empty() {
                return Err("--by and --reason must say who approves and why".into());
            }
            let ops = target.open().await?;
            let event = ops
                .approve(&invoice, &by, &reason, !allow_delivery_confirmer)
                .await?;
            println!(
                "approved invoice {invoice} by {by}: freight_invoice.matched {} published",
                event.event_id
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Replay {
            from,
            to,
            partner,
            detail_type,
            dry_run,
            json,
            target,
        } => {
            let now = chrono::Utc::now();
            let window = ReplayWindow {
                from: ops::parse_time(&from, now)?,
                to: to
                    .as_deref()
                    .map(|t| ops::parse_time(t, now))
                    .transpose()?
                    .unwrap_or(now),
                partner,
                detail_type,
            };
            if window.from > window.to {
                return Err("--from is after --to".into());
            }
            let ops = target.open().await?;
            let summary = ops.replay(&window, dry_run).await?;
            if json {
                println!("{}", to_json(&summary)?);
            } else if let Some(name) = &summary.replay_name {
                let verb = if summary.dry_run {
                    "would start"
                } else {
                    "started"
                };
                println!(
                    "{verb} EventBridge replay {name} from {} to {} rule(s){}",
                    summary.archive.as_deref().unwrap_or("the archive"),
                    summary.rules.len(),
                    summary
                        .state
                        .as_deref()
                        .map(|s| format!(": {s}"))
                        .unwrap_or_default()
                );
            } else if summary.dry_run {
                println!("would replay {} archived event(s)", summary.matched);
            } else {
                println!(
                    "replayed {} of {} archived event(s); the consumers dedupe what was applied before",
                    summary.replayed, summary.matched
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Trace {
            query,
            json,
            target,
        } => {
            let ops = target.open().await?;
            let records = ops.trace(&query).await?;
            if json {
                println!("{}", to_json(&records)?);
            } else if records.is_empty() {
                println!("nothing recorded for {query:?}");
            } else {
                print!("{}", freightbridge::audit::timeline(&records));
            }
            Ok(if records.is_empty() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}

async fn dlq(command: DlqCommand) -> Result<ExitCode, String> {
    match command {
        DlqCommand::List {
            filter,
            json,
            target,
        } => {
            let ops = target.open().await?;
            let letters: Vec<Letter> = ops
                .letters(&filter.filter()?)
                .await?
                .into_iter()
                .map(|(letter, _)| letter)
                .collect();
            if json {
                println!("{}", to_json(&letters)?);
            } else {
                print!("{}", ops::letters_table(&letters, chrono::Utc::now()));
            }
            Ok(ExitCode::SUCCESS)
        }
        DlqCommand::Redrive {
            filter,
            limit,
            dry_run,
            json,
            target,
        } => {
            let ops = target.open().await?;
            let summary = ops.redrive(&filter.filter()?, limit, dry_run).await?;
            if json {
                println!("{}", to_json(&summary)?);
            } else {
                println!("{}", ops::redrive_line(&summary));
            }
            Ok(if summary.failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, String> {
    serde_json::to_string_pretty(value).map_err(|e| e.to_string())
}

/// Waits for SIGTERM (how a service manager stops us) or Ctrl-C; answers which one came.
async fn stop_signal() -> std::io::Result<&'static str> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = terminate.recv() => Ok("SIGTERM"),
        result = tokio::signal::ctrl_c() => result.map(|()| "Ctrl-C"),
    }
}

fn load_finance(path: &Path) -> Result<FinanceConfig, String> {
    FinanceConfig::load(path).map_err(|e| e.to_string())
}

fn load_reconcile(path: &Path) -> Result<freightbridge::reconcile::ReconcileConfig, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    freightbridge::reconcile::ReconcileConfig::from_toml(&text)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// The sweep's settings: the file named, else the checkout's default file when there is one,
/// else the built-in ages (a sweep needs no tolerance or rate card).
fn sweep_settings(
    path: Option<&Path>,
) -> Result<freightbridge::reconcile::ReconcileConfig, String> {
    match path {
        Some(path) => load_reconcile(path),
        None if Path::new(DEFAULT_RECONCILE).is_file() => {
            load_reconcile(Path::new(DEFAULT_RECONCILE))
        }
        None => Ok(freightbridge::reconcile::ReconcileConfig::default()),
    }
}

/// Writes `text` beside `path` first and renames it there, so a reader never sees half a file.
fn write_atomically(path: &Path, text: &str) -> Result<(), String> {
    prepare(&[&path.to_path_buf()])?;
    let name = path
        .file_name()
        .ok_or_else(|| format!("{} names no file", path.display()))?;
    let mut partial_name = std::ffi::OsString::from(".");
    partial_name.push(name);
    partial_name.push(format!(".{}.partial", std::process::id()));
    let partial = path.with_file_name(partial_name);
    std::fs::write(&partial, text)
        .map_err(|e| format!("cannot write {}: {e}", partial.display()))?;
    std::fs::rename(&partial, path).map_err(|e| {
        let _ = std::fs::remove_file(&partial);
        format!("cannot write {}: {e}", path.display())
    })
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
