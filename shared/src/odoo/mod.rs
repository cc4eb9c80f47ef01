//! Odoo: the client (JSON-2 and JSON-RPC transports, dry-run journal) and business operations.
