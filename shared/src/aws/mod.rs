//! AWS adapters: DynamoDB idempotency store, EventBridge bus, SQS dead letters, Secrets Manager.
