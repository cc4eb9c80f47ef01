//! Webhook signature schemes: verification of raw bodies, and signing for local senders.
