//! A moto server (the AWS emulator) for adapter tests: started on a free 127.0.0.1 port, stopped
//! when dropped or when the test process ends, with an SDK config pointed at it and helpers that
//! create uniquely named tables, queues and buses so tests can share one server in parallel.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::{Credentials, SharedCredentialsProvider};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;

pub const REGION: &str = "us-east-1";
pub const ACCOUNT: &str = "123456789012";
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// The watchdog between us and moto: it starts moto (`$0`, its first arguments `$3…`, then
/// host and port `$1`, log `$2`) in the background and stops it as soon as its stdin closes,
/// which happens when we drop the server *or* when the test process dies (a `static` server is
/// never dropped).
const WATCHDOG: &str = r#"
program=$0 port=$1 log=$2
shift 2
"$program" "$@" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
moto=$!
read -r _ignored
kill "$moto" 2>/dev/null
wait "$moto" 2>/dev/null
rm -f "$log"
exit 0
"#;

/// moto serves each request on its own thread and does not make a DynamoDB conditional write
/// atomic against another one in flight, which DynamoDB does: racing tests of conditional
/// updates would then see lost updates that DynamoDB never produces. This runs moto's own
/// `moto_server` with its DynamoDB requests one at a time (SQS long polls and the rest keep
/// running in parallel).
const SERIALISED_DYNAMODB: &str = r#"
import sys, threading
from moto import server
from moto.moto_server import werkzeug_app
lock = threading.Lock()
serve = werkzeug_app.DomainDispatcherApplication.__call__
def one_dynamodb_request_at_a_time(self, environ, start_response):
    if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
        with lock:
            return list(serve(self, environ, start_response))
    return serve(self, environ, start_response)
werkzeug_app.DomainDispatcherApplication.__call__ = one_dynamodb_request_at_a_time
server.main(sys.argv[1:])
"#;

pub struct MotoServer {
    watchdog: Child,
    stdin: Option<ChildStdin>,
    endpoint: String,
    log: PathBuf,
    config: SdkConfig,
}

impl MotoServer {
    /// Start a new server and wait until it answers. Panics (with what to do) when moto is not
    /// installed or does not come up.
    pub fn start() -> MotoServer {
        let program = find_moto_server().unwrap_or_else(|| {
            panic!(
                "moto_server not found (looked at $MOTO_SERVER, {}, and PATH): run \
                 `scripts/tools.sh` to install moto[server] into .tools/venv",
                workspace_root()
                    .join(".tools/venv/bin/moto_server")
                    .display()
            )
        });
        let port = free_port();
        let log = std::env::temp_dir().join(format!(
            "freightbridge-moto-{}-{port}.log",
            std::process::id()
        ));
        // moto's own Python, beside `moto_server` in its venv: DynamoDB requests serialised.
        let python = program.with_file_name("python3");
        let mut command = Command::new("sh");
        if python.is_file() {
            command
                .arg("-c")
                .arg(WATCHDOG)
                .arg(&python)
                .arg(port.to_string())
                .arg(&log)
                .arg("-c")
                .arg(SERIALISED_DYNAMODB);
        } else {
            eprintln!(
                "moto: no python3 beside {}; DynamoDB requests are not serialised, racing \
                 conditional-write tests may see moto's own lost updates",
                program.display()
            );
            command
                .arg("-c")
                .arg(WATCHDOG)
                .arg(&program)
                .arg(port.to_string())
                .arg(&log);
        }
        let mut watchdog = command
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        let stdin = watchdog.stdin.take();
        let endpoint = format!("http://127.0.0.1:{port}");
        let server = MotoServer {
            watchdog,
            stdin,
            config: sdk_config_for(&endpoint),
            endpoint,
            log,
        };
        server.wait_until_ready(port);
        server
    }

    /// One server for the whole test binary, started on first use.
    pub fn shared() -> &'static MotoServer {
        static SERVER: OnceLock<MotoServer> = OnceLock::new();
        SERVER.get_or_init(MotoServer::start)
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// An SDK config for this server only: explicit endpoint, region and `test` credentials,
    /// nothing read from the environment.
    pub fn sdk_config(&self) -> SdkConfig {
        self.config.clone()
    }

    pub fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&self.config)
    }

    pub fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.config)
    }

    pub fn eventbridge(&self) -> aws_sdk_eventbridge::Client {
        aws_sdk_eventbridge::Client::new(&self.config)
    }

    pub fn secretsmanager(&self) -> aws_sdk_secretsmanager::Client {
        aws_sdk_secretsmanager::Client::new(&self.config)
    }

    /// A table in the Powertools layout: partition key `id` (S), TTL on `expiration`.
    pub async fn create_idempotency_table(&self) -> String {
        let name = unique_name("idempotency");
        let client = self.dynamodb();
        client
            .create_table()
            .table_name(&name)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("id")
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .expect("attribute definition"),
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name("id")
                    .key_type(KeyType::Hash)
                    .build()
                    .expect("key schema"),
            )
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await
            .unwrap_or_else(|e| panic!("CreateTable {name}: {}", render(&e)));
        client
            .update_time_to_live()
            .table_name(&name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name("expiration")
                    .build()
                    .expect("ttl specification"),
            )
            .send()
            .await
            .unwrap_or_else(|e| panic!("UpdateTimeToLive {name}: {}", render(&e)));
        name
    }

    /// A table in the audit trail's layout (the template's `AuditTable`): partition key
    /// `subject` (S), sort key `sk` (S), TTL on `expires_at`.
    pub async fn create_audit_table(&self) -> String {
        let name = unique_name("audit");
        let client = self.dynamodb();
        let attribute = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("attribute definition")
        };
        let key = |name: &str, key_type: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(key_type)
                .build()
                .expect("key schema")
        };
        client
            .create_table()
            .table_name(&name)
            .attribute_definitions(attribute("subject"))
            .attribute_definitions(attribute("sk"))
            .key_schema(key("subject", KeyType::Hash))
            .key_schema(key("sk", KeyType::Range))
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await
            .unwrap_or_else(|e| panic!("CreateTable {name}: {}", render(&e)));
        client
            .update_time_to_live()
            .table_name(&name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name("expires_at")
                    .build()
                    .expect("ttl specification"),
            )
            .send()
            .await
            .unwrap_or_else(|e| panic!("UpdateTimeToLive {name}: {}", render(&e)));
        name
    }

    /// A standard queue with a unique name starting with `prefix`.
    pub async fn create_queue(&self, prefix: &str) -> Queue {
        self.create_queue_with(prefix, &[]).await
    }

    /// A queue that moves a message to its own dead-letter queue after `max_receive_count`
    /// receives without a delete. `visibility_timeout` seconds (0 lets a test receive again at
    /// once).
    pub async fn create_queue_with_dlq(
        &self,
        max_receive_count: u32,
        visibility_timeout: u32,
    ) -> QueueWithDlq {
        let dlq = self.create_queue("dlq").await;
        let redrive = serde_json::json!({
            "deadLetterTargetArn": dlq.arn,
            "maxReceiveCount": max_receive_count.to_string(),
        });
        let queue = self
            .create_queue_with(
                "work",
                &[
                    (QueueAttributeName::RedrivePolicy, redrive.to_string()),
                    (
                        QueueAttributeName::VisibilityTimeout,
                        visibility_timeout.to_string(),
                    ),
                ],
            )
            .await;
        QueueWithDlq { queue, dlq }
    }

    async fn create_queue_with(
        &self,
        prefix: &str,
        attributes: &[(QueueAttributeName, String)],
    ) -> Queue {
        let name = unique_name(prefix);
        let client = self.sqs();
        let mut request = client.create_queue().queue_name(&name);
        for (key, value) in attributes {
            request = request.attributes(key.clone(), value);
        }
        let url = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("CreateQueue {name}: {}", render(&e)))
            .queue_url
            .expect("CreateQueue returns the queue URL");
        let arn = client
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GetQueueAttributes {name}: {}", render(&e)))
            .attributes
            .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
            .expect("the queue has an ARN");
        Queue { name, url, arn }
    }

    /// A custom bus with a rule matching `sources` (and `detail_types`, when not empty) that
    /// delivers to a new queue. moto delivers at once on PutEvents.
    pub async fn create_bus_routed_to_queue(
        &self,
        sources: &[&str],
        detail_types: &[&str],
    ) -> BusRoute {
        let bus_name = unique_name("bus");
        let rule_name = unique_name("rule");
        let queue = self.create_queue("events").await;
        let client = self.eventbridge();
        client
            .create_event_bus()
            .name(&bus_name)
            .send()
            .await
            .unwrap_or_else(|e| panic!("CreateEventBus {bus_name}: {}", render(&e)));
        let mut pattern = serde_json::json!({ "source": sources });
        if !detail_types.is_empty() {
            pattern["detail-type"] = serde_json::json!(detail_types);
        }
        client
            .put_rule()
            .name(&rule_name)
            .event_bus_name(&bus_name)
            .event_pattern(pattern.to_string())
            .send()
            .await
            .unwrap_or_else(|e| panic!("PutRule {rule_name}: {}", render(&e)));
        let target = aws_sdk_eventbridge::types::Target::builder()
            .id("queue")
            .arn(&queue.arn)
            .build()
            .expect("target");
        let output = client
            .put_targets()
            .rule(&rule_name)
            .event_bus_name(&bus_name)
            .targets(target)
            .send()
            .await
            .unwrap_or_else(|e| panic!("PutTargets {rule_name}: {}", render(&e)));
        assert_eq!(
            output.failed_entry_count(),
            0,
            "PutTargets refused the queue"
        );
        BusRoute {
            bus_name,
            rule_name,
            queue,
        }
    }

    fn wait_until_ready(&self, port: u16) {
        let started = Instant::now();
        while started.elapsed() < READY_TIMEOUT {
            if moto_api_status(port) == Some(200) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        panic!(
            "moto_server did not answer GET /moto-api/ on port {port} within {READY_TIMEOUT:?}; \
             its log ({}) ends with:\n{}",
            self.log.display(),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        // Closing the watchdog's stdin makes it stop moto and exit.
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.watchdog.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.watchdog.kill();
        let _ = self.watchdog.wait();
    }
}

#[derive(Debug, Clone)]
pub struct Queue {
    pub name: String,
    pub url: String,
    pub arn: String,
}

#[derive(Debug, Clone)]
pub struct QueueWithDlq {
    pub queue: Queue,
    pub dlq: Queue,
}

#[derive(Debug, Clone)]
pub struct BusRoute {
    pub bus_name: String,
    pub rule_name: String,
    pub queue: Queue,
}

/// `prefix-<12 hex>`: short enough for every AWS name limit, unique across parallel tests.
pub fn unique_name(prefix: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}-{}", &id[..12])
}

fn sdk_config_for(endpoint: &str) -> SdkConfig {
    SdkConfig::builder()
        .endpoint_url(endpoint)
        .region(Region::new(REGION))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "test", "test", None, None, "moto",
        )))
        .behavior_version(BehaviorVersion::latest())
        .build()
}

fn render<E: std::error::Error>(error: &E) -> String {
    freightbridge::aws::render_error(error)
}

fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// `$MOTO_SERVER`, then the project's tool venv, then `PATH`.
fn find_moto_server() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("MOTO_SERVER").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "MOTO_SERVER={} is not a file: point it at a moto_server executable or unset it",
            path.display()
        );
        return Some(path);
    }
    let venv = workspace_root().join(".tools/venv/bin/moto_server");
    if venv.is_file() {
        return Some(venv);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("moto_server"))
        .find(|candidate| candidate.is_file())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

/// The status code of `GET /moto-api/`, or `None` while nothing answers.
fn moto_api_status(port: u16) -> Option<u16> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        stream,
        "GET /moto-api/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 32];
    let n = stream.read(&mut head).ok()?;
    let line = std::str::from_utf8(&head[..n]).ok()?;
    line.split_whitespace().nth(1)?.parse().ok()
}
